//! The session's side of channel modes and INVITE: what MODE, JOIN and
//! INVITE lines become, and the numerics their answers render into.

use super::*;
use crate::core::MaskEntry;

fn session() -> Session {
    let settings = Arc::new(Settings {
        server: "srv".into(),
        network: "net".into(),
        created: "today".into(),
        motd: Vec::new(),
        chanlimit: 10,
    });
    let mut s = Session::new(settings, "192.0.2.7".parse().unwrap());
    let mut out = Vec::new();
    s.render(
        &Event::Ok(OkReply::Login {
            name: "me".into(),
            id: UserId(1),
        }),
        &mut out,
    );
    s
}

/// The commands and the raw lines one client line becomes.
fn input(s: &mut Session, line: &str) -> (Vec<Command>, Vec<String>) {
    let (mut cmds, mut raw) = (Vec::new(), Vec::new());
    s.input(Ok(line), &mut |i| match i {
        Input::Command(c) => cmds.push(c),
        Input::Raw(b) => raw.push(String::from_utf8(b).unwrap()),
        Input::Event(_) | Input::Group(_) => {}
    });
    (cmds, raw)
}

fn rendered(s: &mut Session, event: Event) -> String {
    let mut out = Vec::new();
    s.render(&event, &mut out);
    String::from_utf8(out).unwrap()
}

fn changes(cmds: Vec<Command>) -> Vec<ModeChange> {
    match &cmds[..] {
        [Command::Mode { changes, .. }] => changes.clone(),
        _ => panic!("{cmds:?}"),
    }
}

fn change(add: bool, mode: RoomMode) -> ModeChange {
    ModeChange { add, mode }
}

#[test]
fn mode_lines_become_changes() {
    let mut s = session();
    let (cmds, _) = input(&mut s, "MODE #c +kl-k+bI-e key 5 x a!b@c d");
    assert_eq!(
        changes(cmds),
        [
            change(true, RoomMode::Key("key".into())),
            change(true, RoomMode::Limit("5".into())),
            change(false, RoomMode::Key("x".into())),
            change(true, RoomMode::Mask(MaskList::Ban, "a!b@c".into())),
            change(true, RoomMode::Mask(MaskList::Invite, "d".into())),
            change(false, RoomMode::List(MaskList::Except)),
        ]
    );
    // -k takes the key if one is given, -l never takes a parameter.
    let (cmds, _) = input(&mut s, "MODE #c -lk+imsv key bob");
    assert_eq!(
        changes(cmds),
        [
            change(false, RoomMode::Limit(String::new())),
            change(false, RoomMode::Key("key".into())),
            change(true, RoomMode::InviteOnly),
            change(true, RoomMode::Moderated),
            change(true, RoomMode::Secret),
            change(true, RoomMode::Voice("bob".into())),
        ]
    );
    // An empty key or limit goes to the core, which refuses it.
    let (cmds, _) = input(&mut s, "MODE #c +k :");
    assert_eq!(changes(cmds), [change(true, RoomMode::Key(String::new()))]);
    // +k and +l without a parameter are dropped.
    let (cmds, _) = input(&mut s, "MODE #c +kl");
    assert!(cmds.is_empty());
    let (cmds, _) = input(&mut s, "MODE #c -k");
    assert_eq!(changes(cmds), [change(false, RoomMode::Key(String::new()))]);
}

#[test]
fn at_most_four_changes_with_a_parameter() {
    let mut s = session();
    let (cmds, _) = input(&mut s, "MODE #c +bbbbbt a b c d e");
    let changes = changes(cmds);
    assert_eq!(changes.len(), 5);
    assert_eq!(changes[4], change(true, RoomMode::TopicLock));
}

#[test]
fn join_keys_pair_with_channels() {
    let mut s = session();
    let (cmds, _) = input(&mut s, "JOIN #a,#b,#c k1,,k3");
    let keys: Vec<Option<String>> = cmds
        .into_iter()
        .map(|c| match c {
            Command::Join { key, .. } => key,
            c => panic!("{c:?}"),
        })
        .collect();
    assert_eq!(keys, [Some("k1".into()), None, Some("k3".into())]);
}

#[test]
fn invite_lines() {
    let mut s = session();
    let (cmds, _) = input(&mut s, "INVITE bob #c");
    assert_eq!(
        cmds,
        [Command::Invite {
            name: "bob".into(),
            room: "#c".into()
        }]
    );
    assert_eq!(input(&mut s, "INVITE").0, [Command::Invites]);
    let (cmds, raw) = input(&mut s, "INVITE bob");
    assert!(cmds.is_empty());
    assert_eq!(raw, [":srv 461 me INVITE :Not enough parameters\r\n"]);

    let mut err = Error::new(ErrorCode::AlreadyInRoom).about("bob");
    err.command = Some("invite");
    input(&mut s, "INVITE bob #c");
    assert_eq!(
        rendered(&mut s, err.into()),
        ":srv 443 me bob #c :is already on channel\r\n"
    );
    let ok = Event::Ok(OkReply::Invite {
        name: "bob".into(),
        room: "#c".into(),
    });
    assert_eq!(rendered(&mut s, ok), ":srv 341 me bob #c\r\n");
    let invited = Event::Invited {
        room: "#c".into(),
        by: "al".into(),
        mask: "al!al@h".into(),
        name: "me".into(),
    };
    assert_eq!(rendered(&mut s, invited), ":al!al@h INVITE me #c\r\n");
    let list = Event::Invites {
        rooms: vec!["#c".into()],
    };
    assert_eq!(
        rendered(&mut s, list),
        ":srv 336 me #c\r\n:srv 337 me :End of /INVITE list\r\n"
    );
}

#[test]
fn refusals_render_their_numerics() {
    let mut s = session();
    let cases = [
        (
            "join",
            ErrorCode::Banned,
            ":srv 474 me #c :Cannot join channel (+b)",
        ),
        (
            "join",
            ErrorCode::InviteOnly,
            ":srv 473 me #c :Cannot join channel (+i)",
        ),
        (
            "join",
            ErrorCode::BadKey,
            ":srv 475 me #c :Cannot join channel (+k)",
        ),
        (
            "join",
            ErrorCode::RoomFull,
            ":srv 471 me #c :Cannot join channel (+l)",
        ),
        (
            "tell",
            ErrorCode::Moderated,
            ":srv 404 me #c :Cannot send to channel",
        ),
        (
            "tell",
            ErrorCode::Banned,
            ":srv 404 me #c :Cannot send to channel",
        ),
        (
            "mode",
            ErrorCode::ListFull('b'),
            ":srv 478 me #c b :Channel list is full",
        ),
        (
            "mode",
            ErrorCode::BadModeParam('k'),
            ":srv 696 me #c k * :bad",
        ),
    ];
    for (command, code, line) in cases {
        let mut e = Error::new(code).about("#c").text("bad");
        e.command = Some(command);
        assert_eq!(rendered(&mut s, e.into()), format!("{line}\r\n"));
    }
}

#[test]
fn names_mark_voices_and_secret_channels() {
    let mut s = session();
    let members = Event::Members {
        masks: Vec::new(),
        room: "#c".into(),
        names: vec!["a".into(), "b".into(), "c".into()],
        ops: vec![true, false, false],
        voices: vec![true, true, false],
        secret: true,
    };
    assert_eq!(
        rendered(&mut s, members),
        ":srv 353 me @ #c :@a +b c\r\n:srv 366 me #c :End of /NAMES list\r\n"
    );
}

#[test]
fn mode_answers() {
    let mut s = session();
    let modes = Event::RoomModes {
        room: "#c".into(),
        modes: "+kln key 5".into(),
        created: Timestamp(2000),
    };
    assert_eq!(
        rendered(&mut s, modes),
        ":srv 324 me #c +kln key 5\r\n:srv 329 me #c 2\r\n"
    );
    let bans = Event::MaskList {
        room: "#c".into(),
        list: MaskList::Ban,
        entries: vec![MaskEntry {
            mask: "x!*@*".into(),
            by: "al!al@h".into(),
            at: Timestamp(3000),
        }],
    };
    assert_eq!(
        rendered(&mut s, bans),
        ":srv 367 me #c x!*@* al!al@h 3\r\n:srv 368 me #c :End of channel ban list\r\n"
    );
    let change = Event::Mode {
        room: "#c".into(),
        by: "al".into(),
        mask: "al!al@h".into(),
        change: "+kl-i key 5".into(),
    };
    assert_eq!(rendered(&mut s, change), ":al!al@h MODE #c +kl-i key 5\r\n");
}
