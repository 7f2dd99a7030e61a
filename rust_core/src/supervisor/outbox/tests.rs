use super::*;
use std::io::Read;
use std::sync::Arc;

fn pair() -> (
    Arc<Outbox>,
    OwnedWriteHalf,
    UnixStream,
    tokio::net::unix::OwnedReadHalf,
) {
    let (ours, theirs) = UnixStream::pair().expect("pair");
    ours.set_nonblocking(true).expect("nonblocking");
    let direct = ours.try_clone().expect("dup");
    let (read, write) = tokio::net::UnixStream::from_std(ours)
        .expect("tokio stream")
        .into_split();
    (Arc::new(Outbox::new(direct)), write, theirs, read)
}

#[tokio::test]
async fn frames_arrive_in_order_also_past_a_full_socket() {
    let (outbox, writer, mut theirs, _read) = pair();
    let task = tokio::spawn({
        let outbox = Arc::clone(&outbox);
        async move { outbox.run(writer).await }
    });
    // Far more than a socket buffer holds, while nobody reads: the tail is queued.
    let frames: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| {
            let mut f = i.to_le_bytes().to_vec();
            f.resize(1024, (i % 251) as u8);
            f
        })
        .collect();
    for f in &frames {
        outbox.send(f.clone()).expect("open");
    }
    assert!(!outbox.queue.lock().bytes.is_empty() || outbox.queue.lock().writing);
    let expected: Vec<u8> = frames.concat();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; expected.len()];
        theirs.read_exact(&mut got).expect("read");
        assert!(got == expected, "bytes out of order");
    });
    tokio::task::spawn_blocking(move || reader.join().expect("reader"))
        .await
        .expect("join");
    outbox.close();
    task.await.expect("writer task");
    assert_eq!(outbox.send(vec![1]), Err(Closed));
}

fn read_now(theirs: &mut UnixStream) -> Vec<u8> {
    theirs.set_nonblocking(true).expect("nonblocking");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = theirs.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn frames_sent_after_a_durable_one_wait_for_its_sync_in_order() {
    let (outbox, _writer, mut theirs, _read) = pair();
    outbox.send(b"a".to_vec()).expect("open");
    assert_eq!(outbox.send_durable(b"B".to_vec(), 10, 1), Ok(true));
    outbox.send(b"c".to_vec()).expect("open");
    assert_eq!(outbox.send_durable(b"D".to_vec(), 20, 2), Ok(false));
    outbox.send(b"e".to_vec()).expect("open");
    assert_eq!(read_now(&mut theirs), b"a", "held until synced");
    assert_eq!(outbox.held_target(), Some(20));
    assert!(outbox.release(15), "D still waits");
    assert_eq!(read_now(&mut theirs), b"Bc");
    assert!(!outbox.release(20));
    assert_eq!(read_now(&mut theirs), b"De");
    assert_eq!(outbox.held_target(), None);
    outbox.send(b"f".to_vec()).expect("open");
    assert_eq!(read_now(&mut theirs), b"f", "nothing held: written at once");
}

#[tokio::test]
async fn a_failed_sync_refuses_the_durable_frames_and_sends_the_rest() {
    let (outbox, _writer, mut theirs, _read) = pair();
    assert_eq!(outbox.send_durable(b"A".to_vec(), 5, 7), Ok(true));
    outbox.send(b"b".to_vec()).expect("open");
    assert_eq!(outbox.send_durable(b"C".to_vec(), 6, 8), Ok(false));
    assert_eq!(outbox.fail_held(), vec![7, 8]);
    assert_eq!(read_now(&mut theirs), b"b");
    assert_eq!(outbox.held_target(), None);
}

#[tokio::test]
async fn a_closed_peer_closes_the_outbox() {
    let (outbox, writer, theirs, _read) = pair();
    drop(theirs);
    let task = tokio::spawn({
        let outbox = Arc::clone(&outbox);
        async move { outbox.run(writer).await }
    });
    assert_eq!(outbox.send(vec![0; 16]), Err(Closed));
    assert!(outbox.is_closed());
    task.await.expect("writer task");
}
