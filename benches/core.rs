//! Micro-benchmarks without sockets: framing throughput, one command through
//! parse + handle + render, and one message fanned out to rooms of growing size.
//!
//! Run with `cargo bench`; figures are for comparing changes on one machine.

use std::hint::black_box;
use std::net::IpAddr;
use std::ops::ControlFlow;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chatd::config::{CoreConfig, MAX_LINE};
use chatd::core::{Action, Chat, Command, ConnId, Timestamp};
use chatd::dialect::line;
use chatd::framing::LineBuffer;

/// Realistic client traffic: short chat lines, some commands, `\r\n` endings.
fn traffic() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..2000 {
        match i % 4 {
            0 => out.extend_from_slice(format!("/msg bob hey, about message {i}\r\n").as_bytes()),
            1 => out.extend_from_slice(b"/ping 12345\n"),
            _ => out.extend_from_slice(
                format!("message number {i} with some ordinary chat text in it\n").as_bytes(),
            ),
        }
    }
    out
}

fn framing(c: &mut Criterion) {
    let data = traffic();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for chunk in [64usize, 4096, 65536] {
        group.bench_with_input(BenchmarkId::new("chunk", chunk), &chunk, |b, &chunk| {
            b.iter(|| {
                let mut buf = LineBuffer::new(MAX_LINE);
                let mut lines = 0usize;
                for part in data.chunks(chunk) {
                    buf.feed(part, |l| {
                        lines += black_box(l).is_ok() as usize;
                        ControlFlow::Continue(())
                    });
                }
                lines
            })
        });
    }
    group.finish();
}

fn ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// A chat whose lobby has `members` users on connections 0..members.
fn lobby_of(members: u64) -> Chat {
    let mut chat = Chat::new(CoreConfig::default());
    for i in 0..members {
        chat.connect(ConnId(i), ip(), Timestamp(0));
        chat.handle(
            ConnId(i),
            Command::Login {
                name: format!("user{i}"),
                password: None,
            },
            Timestamp(0),
        );
    }
    chat
}

fn command_round_trip(c: &mut Criterion) {
    let mut chat = lobby_of(2);
    let mut out = Vec::new();
    let mut bytes = Vec::new();
    c.bench_function("parse+handle+render /msg", |b| {
        b.iter(|| {
            out.clear();
            bytes.clear();
            let cmd = line::parse(black_box("/msg user1 hello there")).expect("parses");
            chat.handle_into(ConnId(0), cmd, Timestamp(1), &mut out);
            for action in &out {
                if let Action::Fanout { event, .. } | Action::Send { event, .. } = action {
                    line::render(event, &mut bytes);
                }
            }
            bytes.len()
        })
    });
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for members in [1u64, 100, 10_000] {
        let mut chat = lobby_of(members);
        let mut out = Vec::new();
        group.throughput(Throughput::Elements(members));
        group.bench_with_input(BenchmarkId::new("members", members), &members, |b, _| {
            b.iter(|| {
                out.clear();
                chat.handle_into(
                    ConnId(0),
                    Command::Say {
                        room: None,
                        text: "hello everyone".into(),
                    },
                    Timestamp(1),
                    &mut out,
                );
                let mut bytes = Vec::new();
                if let Some(Action::Fanout { to, event }) = out.first() {
                    // Rendered once and shared, as the reactor does.
                    line::render(event, &mut bytes);
                    black_box(to.len());
                }
                bytes.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, framing, command_round_trip, fanout);
criterion_main!(benches);
