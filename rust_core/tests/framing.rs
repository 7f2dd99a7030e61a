//! The journal's record framing against the vectors of `tests/data/framing.txt`, which the
//! Python readers are checked against too (`tests/test_framing.py`): the format of
//! docs/formats.md, "Common framing".

use std::path::PathBuf;

use _core::journal::{frame_payload, read_frames};

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// (payload, record) of each line.
fn vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/framing.txt");
    std::fs::read_to_string(path)
        .expect("the vectors")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (payload, record) = line.split_once(' ').expect("two fields");
            (unhex(payload), unhex(record))
        })
        .collect()
}

#[test]
fn records_are_framed_as_the_vectors() {
    let rows = vectors();
    assert!(rows.len() >= 3);
    for (payload, record) in &rows {
        assert_eq!(&frame_payload(payload), record);
    }
}

#[test]
fn the_vectors_are_read_back_up_to_a_record_cut_short() {
    let rows = vectors();
    let whole: Vec<u8> = rows.iter().flat_map(|(_, r)| r.clone()).collect();
    let path = std::env::temp_dir().join(format!("mt5exec-framing-{}.log", std::process::id()));
    std::fs::write(&path, &whole).expect("write");
    let payloads: Vec<Vec<u8>> = rows.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(read_frames(&path).expect("read"), payloads);
    std::fs::write(&path, &whole[..whole.len() - 10]).expect("write");
    assert_eq!(
        read_frames(&path).expect("read"),
        payloads[..payloads.len() - 1]
    );
    std::fs::remove_file(&path).expect("remove");
}
