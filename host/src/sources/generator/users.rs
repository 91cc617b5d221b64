//! Synthetic randomuser.me users, with the API's quirks: postcodes that are numbers for
//! some nationalities and strings for others, non-ASCII names, streets and cities,
//! `id.value` that is sometimes null, v4 `login.uuid`s.

use crate::sources::SplitMix64;
use serde_json::{json, Value};

struct Nationality {
    code: &'static str,
    country: &'static str,
    male: &'static [&'static str],
    female: &'static [&'static str],
    last: &'static [&'static str],
    streets: &'static [&'static str],
    cities: &'static [&'static str],
    states: &'static [&'static str],
    postcode: Postcode,
    phone: &'static str,
    id_name: &'static str,
}

/// How a nationality's postcode looks in the API.
enum Postcode {
    /// A JSON number with this many digits.
    Number(u32),
    /// A JSON string made from a pattern: `9` a digit, `A` a capital letter.
    Text(&'static str),
}

const NATIONALITIES: &[Nationality] = &[
    Nationality {
        code: "BR",
        country: "Brazil",
        male: &["Mateus", "João", "Lúcio", "Otávio", "Caetano"],
        female: &["Lívia", "Débora", "Luíza", "Ana", "Conceição"],
        last: &["Araújo", "Gonçalves", "Ribeiro", "Peixoto", "Simões"],
        streets: &[
            "Rua Santa Luzia",
            "Rua São Jorge",
            "Avenida Brasil",
            "Rua Três",
        ],
        cities: &["São Paulo", "Belém", "Maringá", "Uberlândia"],
        states: &["Pará", "Santa Catarina", "Goiás", "Paraíba"],
        postcode: Postcode::Number(5),
        phone: "(99) 9999-9999",
        id_name: "CPF",
    },
    Nationality {
        code: "DK",
        country: "Denmark",
        male: &["Søren", "Mads", "Jørgen", "Asger"],
        female: &["Ida", "Sofie", "Maja", "Åse"],
        last: &["Møller", "Sørensen", "Jørgensen", "Kjær"],
        streets: &["Skovvej", "Ørstedsvej", "Bøgevej", "Ålekistevej"],
        cities: &["København", "Århus", "Odense", "Næstved"],
        states: &["Hovedstaden", "Midtjylland", "Syddanmark", "Sjælland"],
        postcode: Postcode::Number(4),
        phone: "99999999",
        id_name: "CPR",
    },
    Nationality {
        code: "FI",
        country: "Finland",
        male: &["Eetu", "Väinö", "Onni", "Jyrki"],
        female: &["Ella", "Aino", "Sisko", "Pihla"],
        last: &["Kinnunen", "Mäkelä", "Hämäläinen", "Kärkkäinen"],
        streets: &["Hämeentie", "Pyynikintie", "Tehtaankatu", "Mannerheimintie"],
        cities: &["Helsinki", "Jyväskylä", "Hämeenlinna", "Äänekoski"],
        states: &["Uusimaa", "Pirkanmaa", "Lapland", "Päijät-Häme"],
        postcode: Postcode::Number(5),
        phone: "09-999-999",
        id_name: "HETU",
    },
    Nationality {
        code: "IE",
        country: "Ireland",
        male: &["Liam", "Seán", "Conor", "Oisín"],
        female: &["Aoife", "Siobhán", "Niamh", "Róisín"],
        last: &["O'Connor", "Murphy", "Ó Briain", "Kelly"],
        streets: &["Church Road", "Main Street", "Station Road", "Green Lane"],
        cities: &["Tralee", "Galway", "Cork", "Dún Laoghaire"],
        states: &["Kerry", "Galway", "Cork", "Dublin City"],
        postcode: Postcode::Text("99999"),
        phone: "099-999-9999",
        id_name: "PPS",
    },
    Nationality {
        code: "GB",
        country: "United Kingdom",
        male: &["Harry", "Oliver", "Jack", "Rhys"],
        female: &["Amelia", "Chloé", "Isla", "Zoë"],
        last: &["Wright", "Hughes", "Brontë", "Walker"],
        streets: &["Queen Street", "Mill Lane", "Victoria Road", "The Green"],
        cities: &["Leeds", "Bristol", "Sheffield", "Cardiff"],
        states: &[
            "West Yorkshire",
            "Avon",
            "South Yorkshire",
            "South Glamorgan",
        ],
        postcode: Postcode::Text("A9 9AA"),
        phone: "0999 999 9999",
        id_name: "NINO",
    },
    Nationality {
        code: "DE",
        country: "Germany",
        male: &["Jürgen", "Björn", "Jörg", "Lukas"],
        female: &["Jülide", "Käthe", "Hannelore", "Lea"],
        last: &["Müller", "Groß", "Schäfer", "Köhler"],
        streets: &["Königsallee", "Schloßstraße", "Gartenstraße", "Mühlenweg"],
        cities: &["München", "Köln", "Lübeck", "Düsseldorf"],
        states: &[
            "Bayern",
            "Nordrhein-Westfalen",
            "Schleswig-Holstein",
            "Thüringen",
        ],
        postcode: Postcode::Number(5),
        phone: "0999-9999999",
        id_name: "SVNR",
    },
    Nationality {
        code: "NZ",
        country: "New Zealand",
        male: &["Tim", "Nikau", "Liam", "Hēmi"],
        female: &["Ruby", "Mere", "Aroha", "Māia"],
        last: &["Wright", "Ngata", "Taylor", "Wātene"],
        streets: &["Queen St", "Tory Street", "Ponsonby Road", "Cuba Street"],
        cities: &["Auckland", "Wellington", "Whangārei", "Tauranga"],
        states: &["Auckland", "Wellington", "Northland", "Bay of Plenty"],
        postcode: Postcode::Number(4),
        phone: "(999)-999-9999",
        id_name: "",
    },
    Nationality {
        code: "CA",
        country: "Canada",
        male: &["Noah", "Étienne", "Félix", "Mathis"],
        female: &["Léa", "Chloé", "Maëlle", "Emma"],
        last: &["Tremblay", "Gagné", "Côté", "Roy"],
        streets: &["Rue Principale", "King St", "Dufferin St", "Avenue du Parc"],
        cities: &["Montréal", "Québec", "Trois-Rivières", "Lévis"],
        states: &["Québec", "Ontario", "Nova Scotia", "Manitoba"],
        postcode: Postcode::Text("A9A 9A9"),
        phone: "A99-A99-9999",
        id_name: "SIN",
    },
];

const ADJECTIVES: &[&str] = &[
    "tiny", "lazy", "brave", "silver", "happy", "purple", "quick", "heavy",
];
const ANIMALS: &[&str] = &[
    "fish", "tiger", "owl", "rabbit", "swan", "koala", "bear", "frog",
];
const PASSWORDS: &[&str] = &[
    "sunshine", "dragon", "qwerty", "letmein", "monkey", "tigger",
];

fn pattern(rng: &mut SplitMix64, pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '9' => char::from(b'0' + rng.below(10) as u8),
            'A' => char::from(b'A' + rng.below(26) as u8),
            c => c,
        })
        .collect()
}

fn hex(rng: &mut SplitMix64, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap())
        .collect()
}

/// A v4 UUID from the generator's stream (so a seed fixes it).
fn uuid_v4(rng: &mut SplitMix64) -> String {
    let bytes = ((rng.next_u64() as u128) << 64 | rng.next_u64() as u128).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// An ISO-8601 UTC timestamp with milliseconds, as the API writes them, `years_ago`
/// years before 2026, and the age it implies.
fn date(rng: &mut SplitMix64, min_years: u64, max_years: u64) -> (String, u64) {
    let age = min_years + rng.below(max_years - min_years + 1);
    let ms = 1_767_225_600_000i64 // 2026-01-01T00:00:00Z
        - (age as i64) * 31_556_952_000
        - rng.below(31_556_952_000) as i64;
    let text = chrono::DateTime::from_timestamp_millis(ms)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    (text, age)
}

/// One user object.
pub fn user(rng: &mut SplitMix64) -> Value {
    let nat = rng.pick(NATIONALITIES);
    let female = rng.below(2) == 0;
    let (gender, title, first, portraits) = if female {
        (
            "female",
            *rng.pick(&["Ms", "Mrs", "Miss", "Mademoiselle"]),
            *rng.pick(nat.female),
            "women",
        )
    } else {
        (
            "male",
            *rng.pick(&["Mr", "Monsieur"]),
            *rng.pick(nat.male),
            "men",
        )
    };
    let last = *rng.pick(nat.last);
    let postcode = match nat.postcode {
        Postcode::Number(digits) => {
            let low = 10u64.pow(digits - 1);
            json!(low + rng.below(9 * low))
        }
        Postcode::Text(p) => json!(pattern(rng, p)),
    };
    let (dob, age) = date(rng, 18, 80);
    let (registered, reg_age) = date(rng, 0, 20);
    let picture = rng.below(100);
    let id_value = if nat.id_name.is_empty() || rng.below(4) == 0 {
        Value::Null
    } else {
        json!(pattern(rng, "999999999"))
    };
    json!({
        "gender": gender,
        "name": { "title": title, "first": first, "last": last },
        "location": {
            "street": { "number": 1 + rng.below(9999), "name": rng.pick(nat.streets) },
            "city": rng.pick(nat.cities),
            "state": rng.pick(nat.states),
            "country": nat.country,
            "postcode": postcode,
            "coordinates": {
                "latitude": format!("{:.4}", rng.unit() * 180.0 - 90.0),
                "longitude": format!("{:.4}", rng.unit() * 360.0 - 180.0),
            },
            "timezone": { "offset": "+1:00", "description": "Brussels, Copenhagen, Madrid, Paris" },
        },
        "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase().replace(' ', "")),
        "login": {
            "uuid": uuid_v4(rng),
            "username": format!("{}{}{}", rng.pick(ADJECTIVES), rng.pick(ANIMALS), 100 + rng.below(900)),
            "password": rng.pick(PASSWORDS),
            "salt": pattern(rng, "AAAAAAAA"),
            "md5": hex(rng, 32),
            "sha1": hex(rng, 40),
            "sha256": hex(rng, 64),
        },
        "dob": { "date": dob, "age": age },
        "registered": { "date": registered, "age": reg_age },
        "phone": pattern(rng, nat.phone),
        "cell": pattern(rng, nat.phone),
        "id": { "name": nat.id_name, "value": id_value },
        "picture": {
            "large": format!("https://randomuser.me/api/portraits/{portraits}/{picture}.jpg"),
            "medium": format!("https://randomuser.me/api/portraits/med/{portraits}/{picture}.jpg"),
            "thumbnail": format!("https://randomuser.me/api/portraits/thumb/{portraits}/{picture}.jpg"),
        },
        "nat": nat.code,
    })
}

/// A whole API response, as `GET /api/?results=N&seed=...&page=...` returns it.
pub fn response(rng: &mut SplitMix64, results: usize, seed: u64, page: u64) -> Value {
    let users: Vec<Value> = (0..results).map(|_| user(rng)).collect();
    json!({
        "results": users,
        "info": { "seed": format!("{seed:016x}"), "results": results, "page": page, "version": "1.4" },
    })
}
