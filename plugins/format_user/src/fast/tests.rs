//! The fast path against the serde path: wherever it answers, its answer must be the
//! serde path's, byte for byte, errors included; and it must answer for the users
//! randomuser.me really sends, or it would be no fast path.

use super::parse;
use crate::fields::{collect_rows, format_object, format_with_serde};

const RESULTS5: &str = include_str!("../../../../tests/fixtures/randomuser/response_results5.json");
const RESULTS1: &str = include_str!("../../../../tests/fixtures/randomuser/response_results1.json");
const ERROR: &str = include_str!("../../../../tests/fixtures/randomuser/response_error.json");
const USERS: &str = include_str!("../../../../tests/fixtures/randomuser/users.jsonl");

/// Whether the fast path answered; panics if its answer differs from serde's.
fn agrees(input: &[u8]) -> bool {
    let Some(top) = parse(input) else {
        return false;
    };
    let fast = collect_rows(|emit| format_object(&top, input, emit));
    let serde = collect_rows(|emit| format_with_serde(input, emit));
    assert_eq!(
        fast,
        serde,
        "the fast path differs from serde on {:?}",
        String::from_utf8_lossy(input)
    );
    true
}

fn bases() -> Vec<Vec<u8>> {
    let mut all = vec![RESULTS5.as_bytes().to_vec(), RESULTS1.as_bytes().to_vec()];
    // Its last line is a broken record, kept for the pipeline tests: left out here.
    all.extend(
        USERS
            .lines()
            .filter(|l| !l.contains("truncated"))
            .map(|l| l.as_bytes().to_vec()),
    );
    // Compact, as a producer's serializer writes it, with a leading event time.
    let one: serde_json::Value = serde_json::from_str(USERS.lines().next().unwrap()).unwrap();
    all.push(format!("{{\"ts_ms\":1767225600000,{}", &one.to_string()[1..]).into_bytes());
    all
}

#[test]
fn answers_for_real_users_and_whole_responses() {
    for base in bases() {
        assert!(
            agrees(&base),
            "not taken: {}",
            String::from_utf8_lossy(&base)
        );
    }
}

#[test]
fn hands_the_unusual_to_serde_and_agrees_where_it_answers() {
    let user = USERS.lines().next().unwrap();
    // `user` with one field's value replaced by `v`.
    let with = |field: &str, was: &str, v: &str| {
        let from = format!("\"{field}\": {was}");
        assert!(user.contains(&from), "the fixture has no {from}");
        user.replacen(&from, &format!("\"{field}\": {v}"), 1)
    };
    let title = |v: &str| with("title", "\"Mrs\"", v);
    let postcode = |v: &str| with("postcode", "48213", v);
    let gender = |v: &str| with("gender", "\"female\"", v);
    let mut cases: Vec<String> = [
        ERROR,
        "{}",
        " {\"results\": []} ",
        "{\"results\": null}",
        "{\"results\": [null]}",
        "[1]",
        "\u{feff}{}",
    ]
    .map(String::from)
    .to_vec();
    cases.extend([format!("{user} x"), format!("{user},")]);
    cases.extend(
        [
            "\"fe\\\"male\"",
            "\"fe\\u00e9male\"",
            "\"\\ud800\"",
            "null",
            "null, \"gender\": \"male\"",
            "1",
        ]
        .map(gender),
    );
    cases.extend(
        [
            "\"\\ud800\"",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "[1, 2.5, -0, 1e5, true, false, null, {}]",
            "01",
            "1.",
            "-",
            "1e400",
            &format!("1{}", "0".repeat(400)),
            "tru",
            "[1,]",
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ]
        .map(title),
    );
    cases.extend(
        [
            "-42",
            "1.50",
            "1E2",
            "98765432109876543210",
            "null",
            "true",
            "\"48213\", \"postcode\": 1",
        ]
        .map(postcode),
    );
    // A key given twice after a `null`, with what only a full parse refuses (a lone
    // surrogate) elsewhere: serde's structs refuse the second copy.
    let twice = gender("null, \"gender\": \"female\"");
    cases.push(twice.replacen("\"title\": \"Mrs\"", "\"title\": \"\\ud800\"", 1));
    cases.push("{\"gender\":null,\"gender\":null,\"x\":\"\\ud800\"}".into());
    cases.push("{\"name\":null,\"name\":{\"first\":\"a\"},\"x\":\"\\ud800\"}".into());
    cases.extend([
        user.replacen("\"title\": \"Mrs\"", "\"ti\\u0074le\": 1", 1),
        user.replacen("\"gender\": \"female\", ", "", 1),
        user.replacen("\"name\": {", "\"name\": null, \"x\": {", 1),
        user.replacen("\"name\": {", "\"name\": [], \"x\": {", 1),
        user.replacen("\"uuid\": \"", "\"uuid\": \"not-", 1),
        user.replacen("{\"gender\"", "{\"results\": 1, \"gender\"", 1),
        user.replacen("{\"gender\"", "{\"error\": \"x\", \"gender\"", 1),
        format!("{{\"results\": [{user}, {user}], \"info\": {{\"seed\": \"x\"}}}}"),
        format!("{{\"results\": [{user}, 1]}}"),
        format!(
            "{{\"results\": [{}]}}",
            user.replacen("{\"gender\"", "{\"results\": [], \"gender\"", 1)
        ),
    ]);
    let mut answered = 0;
    for case in &cases {
        answered += usize::from(agrees(case.as_bytes()));
        // Invalid UTF-8 in the middle: always serde's.
        let mut bytes = case.clone().into_bytes();
        bytes.insert(bytes.len() / 2, 0xff);
        assert!(!agrees(&bytes));
    }
    assert!(answered > 5, "the fast path answered only {answered} cases");
}

/// Small deterministic generator (no rand dependency in the plugin).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_users_get_serde_answers() {
    // Bytes that matter to JSON, and some that matter to UTF-8.
    const BYTES: &[u8] = b"\"\\{}[],:0123456789-+.eEtrufalsn \t\n\r\x01\x1f/buxdDcC\xc3\xa9\xff";
    let mut rng = Rng(17);
    let (mut tried, mut answered) = (0, 0);
    for base in bases() {
        for _ in 0..4000 {
            let mut v = base.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(v.len());
                match rng.below(5) {
                    0 => {
                        v.remove(at);
                    }
                    1 => v.insert(at, BYTES[rng.below(BYTES.len())]),
                    2 => v[at] = BYTES[rng.below(BYTES.len())],
                    3 => {
                        // Copy a piece elsewhere (keys given twice, nests).
                        let len = rng.below(40).min(v.len() - at);
                        let piece = v[at..at + len].to_vec();
                        let to = rng.below(v.len());
                        v.splice(to..to, piece);
                    }
                    _ => {
                        let len = rng.below(20).min(v.len() - at);
                        v.drain(at..at + len);
                    }
                }
            }
            tried += 1;
            answered += usize::from(agrees(&v));
        }
    }
    // Many one-byte changes land in a skipped string and leave valid JSON: those must
    // have been answered fast, and agreed.
    assert!(
        answered * 10 > tried,
        "fast path answered {answered} of {tried}"
    );
}

#[test]
fn digits_stop_at_the_first_byte_that_is_not_one() {
    for run in 0..20 {
        for stop in 0..=255u8 {
            let mut s = b"1234567890123456789".to_vec();
            s.truncate(run);
            s.push(stop);
            s.extend_from_slice(b"99999999");
            let mut p = super::Parser {
                s: &s,
                text: "",
                i: 0,
            };
            p.digits();
            let want = if stop.is_ascii_digit() { s.len() } else { run };
            assert_eq!(p.i, want, "{run} digits, then {stop:#x}");
        }
    }
}

#[test]
fn the_lowest_flag_of_eight_bytes_is_their_first_special_byte() {
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    for at in 0..8 {
        for byte in 0..=255u8 {
            // Specials after it too, to draw the false flags the test allows above.
            for after in [b'a', b'"', b'\\', 0x00, 0x1f, 0x21, 0x80, 0xff] {
                let mut bytes = [b'a'; 8];
                bytes[at] = byte;
                bytes[at + 1..].fill(after);
                let flags = super::string_special_in(u64::from_le_bytes(bytes));
                let want = bytes.iter().position(|&b| special(b));
                let got = (flags != 0).then(|| flags.trailing_zeros() as usize / 8);
                assert_eq!(got, want, "{bytes:?}");
            }
        }
    }
}
