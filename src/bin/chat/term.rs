//! Output to the person, and the terminal state we must hand back on exit.
//!
//! rustyline puts the terminal in raw mode inside its own thread; if we exit
//! while it is reading, nobody would restore the terminal, so we save the
//! termios at start and restore it ourselves (also on drop).

use std::io::{self, IsTerminal, Write};

pub struct Output {
    /// Set while rustyline may be drawing a prompt: lines go above it.
    printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>,
    saved: Option<libc::termios>,
}

impl Output {
    /// Saves the terminal state when stdin is a terminal.
    pub fn new() -> Self {
        let saved = io::stdin().is_terminal().then(save_termios).flatten();
        Output {
            printer: None,
            saved,
        }
    }

    pub fn set_printer(&mut self, printer: Box<dyn rustyline::ExternalPrinter + Send>) {
        self.printer = Some(printer);
    }

    /// Prints one line; output errors (closed stdout) are ignored rather than fatal.
    pub fn line(&mut self, text: &str) {
        if let Some(printer) = &mut self.printer
            && printer.print(format!("{text}\n")).is_ok()
        {
            return;
        }
        let _ = writeln!(io::stdout(), "{text}");
    }

    /// Takes the terminal back from rustyline before the last lines and exit:
    /// restores the termios, turns off bracketed paste and clears a drawn prompt.
    pub fn finish(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: fd 0 and a termios filled in by tcgetattr.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) };
            if self.printer.take().is_some() {
                let _ = write!(io::stdout(), "\x1b[?2004l\r\x1b[K");
                let _ = io::stdout().flush();
            }
        }
        self.printer = None;
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.finish();
    }
}

fn save_termios() -> Option<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it in or fails.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    (unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } == 0).then_some(t)
}
