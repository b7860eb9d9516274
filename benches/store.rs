//! What one loop iteration's durability costs: [`Store::commit`] of 1, 10 and
//! 100 room messages on a file database, with `synchronous=NORMAL` and `FULL`.
//!
//! Run with `cargo bench --bench store`; figures depend on the disk under the
//! temp dir (tmpfs hides fsync), so compare changes on one machine.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chatd::core::{Message, MsgId, Record, RoomId, Timestamp, UserId};
use chatd::store::{Store, SyncMode};

/// `n` messages in room 1 with ids from `*next` on, which it advances so
/// every batch inserts fresh rows as the server would.
fn batch(n: u64, next: &mut u64) -> Vec<Record> {
    let records = (*next..*next + n)
        .map(|id| {
            Record::Message(Arc::new(Message {
                id: MsgId(id),
                sender: UserId(1),
                sender_name: "alice".into(),
                sender_mask: Message::stored_mask("alice"),
                room: RoomId(1),
                at: Timestamp(1_795_341_600_000 + id),
                text: format!("message number {id} with some ordinary chat text in it").into(),
            }))
        })
        .collect();
    *next += n;
    records
}

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    for (label, mode) in [("normal", SyncMode::Normal), ("full", SyncMode::Full)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bench.db");
        let path = path.to_str().expect("utf-8 temp path");
        let mut store = Store::open(path, mode).expect("opens");
        store
            .commit(&[Record::Room {
                id: RoomId(1),
                name: "#lobby".into(),
                topic: "".into(),
                created: Timestamp(0),
            }])
            .expect("commits");
        let mut next = 1;
        for n in [1u64, 10, 100] {
            group.throughput(Throughput::Elements(n));
            group.bench_with_input(BenchmarkId::new(label, n), &n, |b, &n| {
                // By reference, so freeing the records is not timed either.
                b.iter_batched_ref(
                    || batch(n, &mut next),
                    |records| store.commit(black_box(records)).expect("commits"),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
