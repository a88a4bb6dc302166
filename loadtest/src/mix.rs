//! The request mix: which DWH call each request is, and its exact body. Every target gets
//! the same bodies (dwh-sim ignores the credentials; nginx passes them through).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context as _, bail};
use bytes::Bytes;

/// A NIK that fails Dukcapil's format (province 20 is not in use): Gerbang refuses it
/// before any password work and before the DWH, so it exercises refusals without
/// counting toward a lockout.
pub const INVALID_NIK: &str = "2001011501900001";

/// The kinds of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `CALL_NIK` for a NIK the simulator holds.
    CallNik,
    /// `CALL_VERIFY_BY_ELEMEN` for a NIK the simulator holds.
    Verify,
    /// `CALL_NIK` with [`INVALID_NIK`]: refused by Gerbang.
    Refused,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::CallNik, Kind::Verify, Kind::Refused];

    pub fn index(self) -> usize {
        match self {
            Kind::CallNik => 0,
            Kind::Verify => 1,
            Kind::Refused => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::CallNik => "call_nik",
            Kind::Verify => "verify",
            Kind::Refused => "refused",
        }
    }

    /// The DWH service the request's path names.
    pub fn service(self) -> &'static str {
        match self {
            Kind::CallNik | Kind::Refused => "CALL_NIK",
            Kind::Verify => "CALL_VERIFY_BY_ELEMEN",
        }
    }
}

/// Percentages of `CALL_NIK`, `CALL_VERIFY_BY_ELEMEN` and refused requests, e.g. `85,10,5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    pub fn new(call_nik: u32, verify: u32, refused: u32) -> anyhow::Result<Self> {
        if call_nik + verify + refused == 0 {
            bail!("the request mix is empty");
        }
        Ok(Self {
            weights: [call_nik, verify, refused],
        })
    }

    fn total(&self) -> u64 {
        self.weights.iter().map(|w| u64::from(*w)).sum()
    }

    /// The kind a uniformly random `r` selects.
    pub fn pick(&self, r: u64) -> Kind {
        let mut x = r % self.total();
        for kind in Kind::ALL {
            let w = u64::from(self.weights[kind.index()]);
            if x < w {
                return kind;
            }
            x -= w;
        }
        Kind::Refused
    }
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            weights: [85, 10, 5],
        }
    }
}

impl FromStr for Mix {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("mix {s:?}: expected three numbers like 85,10,5"))?;
        match parts[..] {
            [a, b, c] => Mix::new(a, b, c),
            _ => bail!("mix {s:?}: expected three numbers like 85,10,5"),
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.weights;
        write!(f, "{a},{b},{c}")
    }
}

/// One User ID the generator sends as, and the source address its connections bind to.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub password: String,
    pub source: Ipv4Addr,
}

/// Reads `users.tsv`: `user_id<TAB>password<TAB>source address` per line.
pub fn read_users(path: &Path) -> anyhow::Result<Vec<User>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split('\t');
        let (Some(id), Some(password), Some(source)) = (f.next(), f.next(), f.next()) else {
            bail!(
                "{}:{}: expected user<TAB>password<TAB>ip",
                path.display(),
                n + 1
            );
        };
        users.push(User {
            id: id.to_string(),
            password: password.to_string(),
            source: source
                .trim()
                .parse()
                .with_context(|| format!("{}:{}: source address", path.display(), n + 1))?,
        });
    }
    if users.is_empty() {
        bail!("{} lists no users", path.display());
    }
    Ok(users)
}

/// Reads a list of NIKs, one per line.
pub fn read_niks(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let niks: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 16 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    if niks.is_empty() {
        bail!("{} holds no 16-digit NIK", path.display());
    }
    Ok(niks)
}

/// The body of one request of `kind` for `user`.
pub fn body(kind: Kind, nik: &str, user: &User) -> Bytes {
    let (id, pw) = (&user.id, &user.password);
    Bytes::from(match kind {
        Kind::CallNik => format!(r#"{{"NIK":"{nik}","USER_ID":"{id}","PASSWORD":"{pw}"}}"#),
        Kind::Verify => format!(
            r#"{{"NIK":"{nik}","USER_ID":"{id}","PASSWORD":"{pw}","TRESHOLD":"90","NAMA_LGKP":"X"}}"#
        ),
        Kind::Refused => {
            format!(r#"{{"NIK":"{INVALID_NIK}","USER_ID":"{id}","PASSWORD":"{pw}"}}"#)
        }
    })
}

/// SplitMix64: a tiny, fast, seedable generator (statistical quality is plenty here).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mix_proportions() {
        let mix = Mix::default();
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 3];
        let n = 200_000;
        for _ in 0..n {
            counts[mix.pick(rng.next_u64()).index()] += 1;
        }
        let pct = |c: u32| f64::from(c) * 100.0 / f64::from(n);
        assert!((pct(counts[0]) - 85.0).abs() < 0.5, "{counts:?}");
        assert!((pct(counts[1]) - 10.0).abs() < 0.5, "{counts:?}");
        assert!((pct(counts[2]) - 5.0).abs() < 0.5, "{counts:?}");
    }

    #[test]
    fn pick_is_exact_over_one_cycle() {
        let mix: Mix = "2,1,1".parse().expect("valid mix");
        let kinds: Vec<Kind> = (0..4).map(|r| mix.pick(r)).collect();
        assert_eq!(
            kinds,
            [Kind::CallNik, Kind::CallNik, Kind::Verify, Kind::Refused]
        );
        let only_refused: Mix = "0,0,1".parse().expect("valid mix");
        assert!((0..10).all(|r| only_refused.pick(r) == Kind::Refused));
    }

    #[test]
    fn mix_parsing() {
        assert!("85,10".parse::<Mix>().is_err());
        assert!("0,0,0".parse::<Mix>().is_err());
        assert!("a,b,c".parse::<Mix>().is_err());
        assert_eq!("85, 10, 5".parse::<Mix>().expect("valid"), Mix::default());
    }

    #[test]
    fn bodies_are_json_with_the_users_credentials() {
        let user = User {
            id: "u1".into(),
            password: "pw".into(),
            source: Ipv4Addr::new(127, 1, 0, 1),
        };
        for kind in Kind::ALL {
            let b = body(kind, "3204011201900001", &user);
            let v: serde_json::Value = serde_json::from_slice(&b).expect("json body");
            assert_eq!(v["USER_ID"], "u1");
            assert_eq!(v["PASSWORD"], "pw");
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body(Kind::Refused, "3204011201900001", &user))
                .expect("json body");
        assert_eq!(v["NIK"], INVALID_NIK);
        let v: serde_json::Value =
            serde_json::from_slice(&body(Kind::Verify, "3204011201900001", &user))
                .expect("json body");
        assert_eq!(v["TRESHOLD"], "90");
    }
}
