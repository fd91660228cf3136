//! The suite's results (`DIR/server-<scenario>-<time>/checks.json`) and the comparison of two
//! runs, check by check.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One check of one scenario: the scenario, the check's id and, where a scenario repeats an id,
/// its place among those.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckKey {
    pub scenario: String,
    pub id: String,
    pub nth: usize,
}

pub struct Check {
    pub status: String,
    pub error: String,
}

pub struct Results(BTreeMap<CheckKey, Check>);

/// `server-tools-list-2026-12-02T00-53-29-534Z` → `tools-list`.
fn scenario_of(dir_name: &str) -> String {
    let name = dir_name.strip_prefix("server-").unwrap_or(dir_name);
    let bytes = name.as_bytes();
    // The time starts at the last "-YYYY-MM-DDT".
    let cut = (0..bytes.len())
        .rev()
        .find(|&at| {
            bytes.get(at) == Some(&b'-')
                && bytes.get(at + 11) == Some(&b'T')
                && bytes[at + 1..at + 5].iter().all(u8::is_ascii_digit)
        })
        .unwrap_or(name.len());
    name[..cut].to_owned()
}

impl Results {
    pub fn read(dir: &Path) -> Self {
        let mut checks = BTreeMap::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let file = entry.path().join("checks.json");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let scenario = scenario_of(&entry.file_name().to_string_lossy());
            let listed: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|error| {
                panic!("{} is not a list of checks: {error}", file.display())
            });
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for check in listed {
                let id = check["id"].as_str().unwrap_or("(no id)").to_owned();
                let nth = seen.entry(id.clone()).or_default();
                let key = CheckKey {
                    scenario: scenario.clone(),
                    id,
                    nth: *nth,
                };
                *nth += 1;
                let text = |field: &str| check[field].as_str().unwrap_or_default().to_owned();
                checks.insert(
                    key,
                    Check {
                        status: text("status"),
                        error: text("errorMessage"),
                    },
                );
            }
        }
        Self(checks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn passed(&self) -> usize {
        self.0
            .values()
            .filter(|check| check.status == "SUCCESS")
            .count()
    }

    fn passes(&self, key: &CheckKey) -> bool {
        self.0
            .get(key)
            .is_some_and(|check| check.status == "SUCCESS")
    }

    /// The checks that pass here and not in `other`, a run through Airlock reaching its
    /// upstream over `link`.
    pub fn lost_through(&self, other: &Results, link: &str) -> Vec<Gap> {
        self.0
            .keys()
            .filter(|key| self.passes(key) && !other.passes(key))
            .map(|key| Gap {
                link: link.to_owned(),
                scenario: key.scenario.clone(),
                id: key.id.clone(),
            })
            .collect()
    }

    /// Whether `gap`'s check ran here and passed every time.
    pub fn holds(&self, gap: &Gap) -> bool {
        let mut runs = self
            .0
            .iter()
            .filter(|(key, _)| key.scenario == gap.scenario && key.id == gap.id)
            .peekable();
        runs.peek().is_some() && runs.all(|(_, check)| check.status == "SUCCESS")
    }

    /// What this run said of `gap`'s check.
    fn said(&self, gap: &Gap) -> String {
        self.0
            .iter()
            .filter(|(key, _)| key.scenario == gap.scenario && key.id == gap.id)
            .map(|(_, check)| format!("{} {}", check.status, check.error))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A check that passes directly and fails through Airlock, reaching its upstream over `link`
/// (`http` or `stdio`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub link: String,
    pub scenario: String,
    pub id: String,
}

impl Gap {
    /// The gaps `file` lists: `link scenario check-id reason...` a line, `#` comments; a line
    /// without a reason is refused.
    pub fn listed(file: &str) -> Vec<Gap> {
        let text = std::fs::read_to_string(file).unwrap_or_else(|error| panic!("{file}: {error}"));
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let mut words = line.split_whitespace();
                let (Some(link @ ("http" | "stdio")), Some(scenario), Some(id), Some(_reason)) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    panic!("{file}: `{line}` is not `http|stdio scenario check-id reason`");
                };
                Gap {
                    link: link.to_owned(),
                    scenario: scenario.to_owned(),
                    id: id.to_owned(),
                }
            })
            .collect()
    }

    pub fn lines(gaps: &[&Gap], through: &Results) -> String {
        gaps.iter()
            .map(|gap| {
                format!(
                    "{} {}    (through Airlock: {})",
                    gap.scenario,
                    gap.id,
                    through.said(gap)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
