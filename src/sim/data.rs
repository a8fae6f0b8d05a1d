//! The simulator's findings: computed from `(seed, project, slot, generation)` on demand, so a
//! million findings cost a few hashes per item served and no memory per item held.
//!
//! Model: project `p` has `findings_per_project` slots. Generation 0 is the baseline. For each
//! generation `g ≥ 1`, each slot independently changes with probability `churn %` in one of
//! three ways:
//! - **fixed**: absent at `g`; it comes back with the same identity at `g + 1` unless it
//!   changes again (so scansync sees it fixed, then reopened);
//! - **replaced**: a new identity derived from `(p, slot, g)`; the old one is gone (fixed);
//! - **moved**: same identity, start and end lines shifted by 1..=40.
//!
//! With churn 0 every generation is identical. Both vendors serve the same set, each in its
//! own shape, so tests can compare a store against [`project_findings`].
//!
//! Status words are a second, independent walk ([`slot_status`]): with a status churn `s %`,
//! each generation `g ≥ 1` re-draws a slot's vendor status with probability `s %`, among
//! `Open`, `ReCheck`, `Fixed`, `False Positive` and `Accepted` ([`SimStatus`]); a replaced
//! identity starts `Open`. Presence and identity do not depend on it, so a status churn
//! changes what findings say, never which findings are listed.

use chrono::{DateTime, SecondsFormat, Utc};

/// 2026-01-01T00:00:00Z: generation `g` happens `g` days later, which keeps every timestamp
/// in the data deterministic.
const BASE_EPOCH_SECONDS: i64 = 1_767_225_600;
const DAY_SECONDS: i64 = 86_400;

/// One step of splitmix64: a fast, well-mixed hash that needs no crate.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a tuple of numbers; order matters.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5EED_u64, |acc, &p| splitmix64(acc ^ splitmix64(p)))
}

/// A hash mapped onto `[0, 1)`.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

// Domain tags keep the hashes for different decisions independent.
const TAG_CHURN: u64 = 1;
const TAG_CHANGE: u64 = 2;
const TAG_SHIFT: u64 = 3;
const TAG_IDENTITY: u64 = 4;
const TAG_STATUS: u64 = 5;
const TAG_STATUS_WORD: u64 = 6;

/// What the vendor says about a finding it lists, spelled by each vendor its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimStatus {
    Open,
    /// Asked to be checked again: still open.
    ReCheck,
    /// Fixed at the vendor although still listed.
    Fixed,
    FalsePositive,
    /// Risk accepted (CodeThreat) or ignored (Salt Security).
    Accepted,
}

impl SimStatus {
    /// The order a re-draw picks from.
    const DRAW: [SimStatus; 5] = [
        SimStatus::Open,
        SimStatus::ReCheck,
        SimStatus::Fixed,
        SimStatus::FalsePositive,
        SimStatus::Accepted,
    ];

    /// CodeThreat's word: `issue_state.status` (`Open`, `ReCheck`, `Accepted` seen in its
    /// clients; `Fixed`, `False Positive` in its UI).
    pub fn codethreat(self) -> &'static str {
        match self {
            SimStatus::Open => "Open",
            SimStatus::ReCheck => "ReCheck",
            SimStatus::Fixed => "Fixed",
            SimStatus::FalsePositive => "False Positive",
            SimStatus::Accepted => "Accepted",
        }
    }

    /// Salt Security's word: `status` (`Open`, `Resolved`, `Ignored`; `False Positive`).
    /// Salt has no re-check: it stays `Open`.
    pub fn salt(self) -> &'static str {
        match self {
            SimStatus::Open | SimStatus::ReCheck => "Open",
            SimStatus::Fixed => "Resolved",
            SimStatus::FalsePositive => "False Positive",
            SimStatus::Accepted => "Ignored",
        }
    }
}

/// Severity of a simulated finding; both vendors use these four (spelled their own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimSeverity {
    Critical,
    High,
    Medium,
    Low,
}

impl SimSeverity {
    /// Index into per-severity counters: critical, high, medium, low.
    pub fn index(self) -> usize {
        match self {
            SimSeverity::Critical => 0,
            SimSeverity::High => 1,
            SimSeverity::Medium => 2,
            SimSeverity::Low => 3,
        }
    }

    /// CodeThreat's word: `issue_state.severity`.
    pub fn codethreat(self) -> &'static str {
        ["critical", "high", "medium", "low"][self.index()]
    }

    /// Salt Security's word: `severity`.
    pub fn salt(self) -> &'static str {
        ["Critical", "High", "Medium", "Low"][self.index()]
    }
}

/// A SAST weakness as CodeThreat describes it.
pub struct Weakness {
    pub weakness_id: &'static str,
    pub title: &'static str,
    pub cwe: &'static str,
    pub owasp2021: &'static str,
}

const WEAKNESSES: [Weakness; 10] = [
    Weakness {
        weakness_id: "sql_injection",
        title: "SQL Injection",
        cwe: "CWE-89",
        owasp2021: "A03:2021-Injection",
    },
    Weakness {
        weakness_id: "cross_site_scripting",
        title: "Cross-Site Scripting",
        cwe: "CWE-79",
        owasp2021: "A03:2021-Injection",
    },
    Weakness {
        weakness_id: "path_traversal",
        title: "Path Traversal",
        cwe: "CWE-22",
        owasp2021: "A01:2021-Broken Access Control",
    },
    Weakness {
        weakness_id: "hardcoded_credentials",
        title: "Hard-coded Credentials",
        cwe: "CWE-798",
        owasp2021: "A07:2021-Identification and Authentication Failures",
    },
    Weakness {
        weakness_id: "command_injection",
        title: "OS Command Injection",
        cwe: "CWE-78",
        owasp2021: "A03:2021-Injection",
    },
    Weakness {
        weakness_id: "weak_hash",
        title: "Use of a Broken Hash Algorithm",
        cwe: "CWE-328",
        owasp2021: "A02:2021-Cryptographic Failures",
    },
    Weakness {
        weakness_id: "ssrf",
        title: "Server-Side Request Forgery",
        cwe: "CWE-918",
        owasp2021: "A10:2021-Server-Side Request Forgery",
    },
    Weakness {
        weakness_id: "open_redirect",
        title: "Open Redirect",
        cwe: "CWE-601",
        owasp2021: "A01:2021-Broken Access Control",
    },
    Weakness {
        weakness_id: "insecure_deserialization",
        title: "Deserialization of Untrusted Data",
        cwe: "CWE-502",
        owasp2021: "A08:2021-Software and Data Integrity Failures",
    },
    Weakness {
        weakness_id: "xxe",
        title: "XML External Entity Reference",
        cwe: "CWE-611",
        owasp2021: "A05:2021-Security Misconfiguration",
    },
];

/// An API posture gap as Salt Security describes it.
pub struct Gap {
    pub name: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    pub remediation: &'static str,
}

const GAPS: [Gap; 8] = [
    Gap {
        name: "Sensitive data exposed in response",
        category: "API3:2023 Broken Object Property Level Authorization",
        description: "Responses carry personal data fields that clients never read.",
        remediation: "Return only the properties the client needs; filter responses server-side.",
    },
    Gap {
        name: "Endpoint lacks authentication",
        category: "API2:2023 Broken Authentication",
        description: "Requests without credentials receive successful responses.",
        remediation: "Require authentication on this endpoint at the gateway and in the service.",
    },
    Gap {
        name: "Object identifier without authorization check",
        category: "API1:2023 Broken Object Level Authorization",
        description:
            "Users can read objects of other users by changing the identifier in the path.",
        remediation: "Check that the caller owns the object before returning it.",
    },
    Gap {
        name: "No rate limiting",
        category: "API4:2023 Unrestricted Resource Consumption",
        description:
            "A single client sent thousands of requests per minute without being throttled.",
        remediation: "Apply per-client rate limits.",
    },
    Gap {
        name: "Administrative function reachable by regular users",
        category: "API5:2023 Broken Function Level Authorization",
        description: "Non-admin sessions successfully call an administrative operation.",
        remediation: "Enforce role checks on administrative operations.",
    },
    Gap {
        name: "Server-side request to a user-supplied URL",
        category: "API7:2023 Server Side Request Forgery",
        description: "A request parameter holds a URL the service fetches.",
        remediation: "Allow-list destinations; never fetch arbitrary URLs.",
    },
    Gap {
        name: "Verbose error messages",
        category: "API8:2023 Security Misconfiguration",
        description: "Error responses include stack traces and internal host names.",
        remediation: "Return generic errors; log details server-side.",
    },
    Gap {
        name: "Undocumented endpoint",
        category: "API9:2023 Improper Inventory Management",
        description: "Traffic reaches an endpoint missing from the API specification.",
        remediation: "Document or retire the endpoint.",
    },
];

/// The API operations every simulated host exposes (its inventory and OpenAPI paths).
pub const ENDPOINTS: [(&str, &str); 10] = [
    ("GET", "/v1/accounts/{id}"),
    ("POST", "/v1/accounts"),
    ("GET", "/v1/payments/{id}"),
    ("POST", "/v1/payments"),
    ("GET", "/v1/users/{id}/profile"),
    ("PUT", "/v1/users/{id}"),
    ("DELETE", "/v1/sessions/{id}"),
    ("GET", "/v1/orders"),
    ("POST", "/v1/login"),
    ("GET", "/v1/admin/reports"),
];

const DIRS: [&str; 8] = [
    "src/api",
    "src/auth",
    "src/db",
    "src/handlers",
    "lib/util",
    "app/controllers",
    "app/models",
    "web/views",
];
const FILES: [&str; 8] = [
    "users", "orders", "payments", "session", "search", "upload", "report", "config",
];
const EXTS: [&str; 4] = ["js", "py", "java", "go"];

/// The name of project (CodeThreat) and asset hostname (Salt Security) number `n`.
pub fn project_name(n: u32) -> String {
    format!("project-{n}")
}

/// Parses `project-N` back to `N` (no range check).
pub fn project_number(name: &str) -> Option<u32> {
    name.strip_prefix("project-")?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// Where one slot stands at one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    /// False when the finding is fixed at this generation.
    pub present: bool,
    /// The generation whose replacement gave the slot its current identity (0: original).
    pub identity_generation: u64,
    /// Lines moved since the identity appeared.
    pub line_shift: u32,
    /// The generation of the last replacement or move (0: never changed).
    pub changed_generation: u64,
}

/// Walks generations 1..=`generation` for one slot: O(generation).
pub fn slot_state(seed: u64, project: u32, slot: u32, churn: f64, generation: u64) -> SlotState {
    let mut state = SlotState {
        present: true,
        identity_generation: 0,
        line_shift: 0,
        changed_generation: 0,
    };
    if churn <= 0.0 {
        return state;
    }
    let p = churn / 100.0;
    for g in 1..=generation {
        state.present = true;
        let key = [seed, project as u64, slot as u64, g];
        if unit(hash(&[TAG_CHURN, key[0], key[1], key[2], key[3]])) >= p {
            continue;
        }
        match hash(&[TAG_CHANGE, key[0], key[1], key[2], key[3]]) % 3 {
            0 => state.present = false,
            1 => {
                state.identity_generation = g;
                state.line_shift = 0;
                state.changed_generation = g;
            }
            _ => {
                let shift = 1 + (hash(&[TAG_SHIFT, key[0], key[1], key[2], key[3]]) % 40) as u32;
                state.line_shift += shift;
                state.changed_generation = g;
            }
        }
    }
    state
}

/// One simulated finding, vendor-neutral; each vendor module renders it in its own shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SimFinding {
    pub project: u32,
    pub slot: u32,
    /// The generation this finding was listed at.
    pub generation: u64,
    /// The generation its identity first appeared at.
    pub identity_generation: u64,
    /// The generation of its last replacement or move: what `updated_at` reports, so a
    /// finding that did not change serves the same bytes at every generation.
    pub changed_generation: u64,
    /// Stable identity: 24 hex digits (CodeThreat `_id`); Salt's `id` is `gap-` + this.
    pub id: String,
    pub severity: SimSeverity,
    pub weakness: &'static Weakness,
    pub file_path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub gap: &'static Gap,
    /// What the vendor says about it (always `Open` without a status churn).
    pub status: SimStatus,
    /// Salt: the asset hostname, `project-N`.
    pub hostname: String,
    pub method: &'static str,
    pub api_path: &'static str,
}

impl std::fmt::Debug for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.weakness_id)
    }
}
impl PartialEq for Weakness {
    fn eq(&self, other: &Self) -> bool {
        self.weakness_id == other.weakness_id
    }
}
impl std::fmt::Debug for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
impl PartialEq for Gap {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl SimFinding {
    /// Salt Security's `id`.
    pub fn salt_id(&self) -> String {
        format!("gap-{}", self.id)
    }

    /// When the identity first appeared (CodeThreat `created_at`, Salt `firstSeen`).
    pub fn created_at(&self) -> String {
        let offset = (hash(&[TAG_IDENTITY, self.id_seed()]) % 3600) as i64;
        timestamp(BASE_EPOCH_SECONDS + self.identity_generation as i64 * DAY_SECONDS + offset)
    }

    /// When it last changed (CodeThreat `updated_at`, Salt `lastSeen`).
    pub fn updated_at(&self) -> String {
        timestamp(BASE_EPOCH_SECONDS + self.changed_generation as i64 * DAY_SECONDS + 3600)
    }

    fn id_seed(&self) -> u64 {
        u64::from_str_radix(&self.id[..16], 16).unwrap_or(0)
    }
}

fn timestamp(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn identity_hash(seed: u64, project: u32, slot: u32, identity_generation: u64) -> u64 {
    hash(&[
        TAG_IDENTITY,
        seed,
        project as u64,
        slot as u64,
        identity_generation,
    ])
}

fn severity_from_hash(h: u64) -> SimSeverity {
    match h % 100 {
        0..=9 => SimSeverity::Critical,
        10..=34 => SimSeverity::High,
        35..=74 => SimSeverity::Medium,
        _ => SimSeverity::Low,
    }
}

/// Builds the finding a slot holds in `state` (whether present or not).
pub fn finding_for(
    seed: u64,
    project: u32,
    slot: u32,
    state: SlotState,
    generation: u64,
) -> SimFinding {
    let h = identity_hash(seed, project, slot, state.identity_generation);
    let h2 = splitmix64(h);
    let severity = severity_from_hash(h);
    let weakness = &WEAKNESSES[((h >> 8) % WEAKNESSES.len() as u64) as usize];
    let gap = &GAPS[((h >> 16) % GAPS.len() as u64) as usize];
    let (method, api_path) = ENDPOINTS[((h >> 24) % ENDPOINTS.len() as u64) as usize];
    let file_path = format!(
        "{}/{}{}.{}",
        DIRS[(h2 % 8) as usize],
        FILES[((h2 >> 8) % 8) as usize],
        (h2 >> 16) % 50,
        EXTS[((h2 >> 24) % 4) as usize]
    );
    let start_line = 1 + ((h2 >> 32) % 900) as u32 + state.line_shift;
    let end_line = start_line + ((h2 >> 48) % 6) as u32;
    SimFinding {
        project,
        slot,
        generation,
        identity_generation: state.identity_generation,
        changed_generation: state.changed_generation,
        id: format!("{:016x}{:08x}", h2, (h >> 32) as u32),
        severity,
        weakness,
        file_path,
        start_line,
        end_line,
        gap,
        status: SimStatus::Open,
        hostname: project_name(project),
        method,
        api_path,
    }
}

/// A slot's vendor status at `generation`, for an identity that appeared at
/// `identity_generation`: O(generation − identity_generation).
pub fn slot_status(
    seed: u64,
    project: u32,
    slot: u32,
    status_churn: f64,
    identity_generation: u64,
    generation: u64,
) -> SimStatus {
    let mut status = SimStatus::Open;
    if status_churn <= 0.0 {
        return status;
    }
    let p = status_churn / 100.0;
    for g in identity_generation + 1..=generation {
        let key = [seed, project as u64, slot as u64, g];
        if unit(hash(&[TAG_STATUS, key[0], key[1], key[2], key[3]])) < p {
            let draw = hash(&[TAG_STATUS_WORD, key[0], key[1], key[2], key[3]]);
            status = SimStatus::DRAW[(draw % SimStatus::DRAW.len() as u64) as usize];
        }
    }
    status
}

/// The exact set a CodeThreat scan or a Salt sync at `generation` returns for `project`, in
/// listing order (by slot), every finding `Open`.
pub fn project_findings(
    seed: u64,
    project: u32,
    findings_per_project: u32,
    churn: f64,
    generation: u64,
) -> impl Iterator<Item = SimFinding> {
    project_findings_with_status(seed, project, findings_per_project, churn, 0.0, generation)
}

/// [`project_findings`] with a status churn: the findings and the status words they carry.
pub fn project_findings_with_status(
    seed: u64,
    project: u32,
    findings_per_project: u32,
    churn: f64,
    status_churn: f64,
    generation: u64,
) -> impl Iterator<Item = SimFinding> {
    (0..findings_per_project).filter_map(move |slot| {
        let state = slot_state(seed, project, slot, churn, generation);
        state.present.then(|| {
            let mut f = finding_for(seed, project, slot, state, generation);
            f.status = slot_status(
                seed,
                project,
                slot,
                status_churn,
                state.identity_generation,
                generation,
            );
            f
        })
    })
}

/// What a listing of one project at one generation needs to page without walking it: which
/// slots are absent (sorted), how many remain, and the severity counts for scan summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationIndex {
    pub seed: u64,
    pub project: u32,
    pub findings_per_project: u32,
    pub churn: f64,
    pub status_churn: f64,
    pub generation: u64,
    pub absent: Vec<u32>,
    pub total: u32,
    /// critical, high, medium, low
    pub severities: [u32; 4],
}

impl GenerationIndex {
    /// O(slots × generation), once per (project, generation); callers cache it.
    pub fn build(
        seed: u64,
        project: u32,
        findings_per_project: u32,
        churn: f64,
        status_churn: f64,
        generation: u64,
    ) -> GenerationIndex {
        let mut absent = Vec::new();
        let mut severities = [0u32; 4];
        for slot in 0..findings_per_project {
            let state = slot_state(seed, project, slot, churn, generation);
            if !state.present {
                absent.push(slot);
                continue;
            }
            // The severity alone: no strings built for a million-slot index.
            let h = identity_hash(seed, project, slot, state.identity_generation);
            severities[severity_from_hash(h).index()] += 1;
        }
        GenerationIndex {
            seed,
            project,
            findings_per_project,
            churn,
            status_churn,
            generation,
            total: findings_per_project - absent.len() as u32,
            absent,
            severities,
        }
    }

    /// The slot holding the `position`-th present finding (0-based); None past the end.
    pub fn slot_of(&self, position: u32) -> Option<u32> {
        if position >= self.total {
            return None;
        }
        // The smallest slot s with s - |absent ≤ s| == position and s present: start at
        // `position` and step over each absent slot at or below the candidate.
        let mut slot = position;
        for &a in &self.absent {
            if a <= slot {
                slot += 1;
            } else {
                break;
            }
        }
        Some(slot)
    }

    /// Up to `limit` findings starting at `position`, in listing order.
    pub fn page(&self, position: u32, limit: u32) -> Vec<SimFinding> {
        let (seed, project, churn, generation) =
            (self.seed, self.project, self.churn, self.generation);
        let Some(first) = self.slot_of(position) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(limit.min(self.total - position) as usize);
        let mut absent = self.absent.iter().skip_while(|&&a| a < first).peekable();
        let mut slot = first;
        while out.len() < limit as usize && slot < self.findings_per_project {
            if absent.peek() == Some(&&slot) {
                absent.next();
            } else {
                let state = slot_state(seed, project, slot, churn, generation);
                let mut f = finding_for(seed, project, slot, state, generation);
                f.status = slot_status(
                    seed,
                    project,
                    slot,
                    self.status_churn,
                    state.identity_generation,
                    generation,
                );
                out.push(f);
            }
            slot += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_zero_keeps_every_generation_identical() {
        let a: Vec<_> = project_findings(7, 1, 200, 0.0, 0).collect();
        let b: Vec<_> = project_findings(7, 1, 200, 0.0, 5)
            .map(|mut f| {
                f.generation = 0;
                f
            })
            .collect();
        assert_eq!(a.len(), 200);
        assert_eq!(a, b);
    }

    #[test]
    fn fixed_slot_returns_with_the_same_identity_next_generation() {
        let (seed, project, churn) = (3, 2, 30.0);
        let mut checked = 0;
        for slot in 0..2000 {
            for g in 1..4 {
                let now = slot_state(seed, project, slot, churn, g);
                let before = slot_state(seed, project, slot, churn, g - 1);
                let after = slot_state(seed, project, slot, churn, g + 1);
                let next_churned =
                    unit(hash(&[TAG_CHURN, seed, project as u64, slot as u64, g + 1])) < 0.3;
                if !now.present && !next_churned {
                    assert!(after.present);
                    assert_eq!(after.identity_generation, before.identity_generation);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10, "only {checked} fixed slots checked");
    }

    #[test]
    fn page_matches_the_iterator_at_any_position() {
        let (seed, project, fpp, churn, g) = (11, 1, 500, 25.0, 3);
        let all: Vec<_> = project_findings(seed, project, fpp, churn, g).collect();
        let index = GenerationIndex::build(seed, project, fpp, churn, 0.0, g);
        assert_eq!(index.total as usize, all.len());
        assert!(!index.absent.is_empty());
        for (pos, limit) in [
            (0, 7),
            (13, 50),
            (all.len() as u32 - 3, 10),
            (all.len() as u32, 5),
        ] {
            let page = index.page(pos, limit);
            let end = (pos as usize + limit as usize).min(all.len());
            assert_eq!(page, all[pos as usize..end].to_vec(), "pos {pos}");
        }
    }

    #[test]
    fn identities_are_distinct_and_timestamps_deterministic() {
        let all: Vec<_> = project_findings(1, 1, 1000, 0.0, 0).collect();
        let ids: std::collections::HashSet<_> = all.iter().map(|f| f.id.clone()).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(all[0].created_at(), all[0].clone().created_at());
        assert!(all[0].updated_at().starts_with("2026-01-01T01:00:00"));
    }

    #[test]
    fn project_number_round_trips() {
        assert_eq!(project_number(&project_name(12)), Some(12));
        assert_eq!(project_number("project-0"), None);
        assert_eq!(project_number("other"), None);
    }

    #[test]
    fn status_churn_changes_words_but_never_which_findings_are_listed() {
        let (seed, project, fpp, churn, g) = (5, 1, 1_000, 20.0, 3);
        let plain: Vec<_> = project_findings(seed, project, fpp, churn, g).collect();
        let worded: Vec<_> =
            project_findings_with_status(seed, project, fpp, churn, 30.0, g).collect();
        let ids = |v: &[SimFinding]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&plain), ids(&worded));
        assert!(plain.iter().all(|f| f.status == SimStatus::Open));
        for status in SimStatus::DRAW {
            assert!(
                worded.iter().any(|f| f.status == status),
                "{status:?} never drawn"
            );
        }
        // Generation 0 is the baseline: every finding open.
        assert!(
            project_findings_with_status(seed, project, fpp, churn, 30.0, 0)
                .all(|f| f.status == SimStatus::Open)
        );
        let index = GenerationIndex::build(seed, project, fpp, churn, 30.0, g);
        assert_eq!(index.page(0, fpp), worded);
    }

    #[test]
    fn status_words_are_each_vendors_own() {
        assert_eq!(SimStatus::Fixed.codethreat(), "Fixed");
        assert_eq!(SimStatus::Fixed.salt(), "Resolved");
        assert_eq!(SimStatus::Accepted.salt(), "Ignored");
        assert_eq!(SimStatus::ReCheck.salt(), "Open");
        assert_eq!(SimStatus::FalsePositive.codethreat(), "False Positive");
    }
}
