//! What each platform's push looks like: which header says it is a push, which carries the
//! delivery id, and where the branch is in the body. Pure functions over headers and bytes,
//! called only after the signature held.

use crate::config::Platform;
use axum::http::HeaderMap;
use serde::Deserialize;

/// A header's value as text; `None` when absent or not visible ASCII.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What kind of delivery a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push: may start the scan.
    Push,
    /// Anything else (ping, tag push, pull request…): answered 200, starts nothing.
    Other(String),
}

/// The event of a request, from the platform's event header. Err when the header is
/// missing: not a request the platform would send.
pub fn event(platform: Platform, headers: &HeaderMap) -> Result<Event, String> {
    let (name, push): (&str, &[&str]) = match platform {
        Platform::Github => ("X-GitHub-Event", &["push"]),
        Platform::Gitlab => ("X-Gitlab-Event", &["Push Hook"]),
        // Cloud sends repo:push, Data Center repo:refs_changed.
        Platform::Bitbucket => ("X-Event-Key", &["repo:push", "repo:refs_changed"]),
    };
    let value = header(headers, name).ok_or_else(|| format!("no {name} header"))?;
    Ok(if push.contains(&value.trim()) {
        Event::Push
    } else {
        Event::Other(value.trim().to_string())
    })
}

/// The delivery id a sender repeats when it retries (and an attacker when it replays):
/// GitHub `X-GitHub-Delivery`; Bitbucket Cloud `X-Request-UUID`, Data Center `X-Request-Id`;
/// GitLab `webhook-id` (covered by the signature when signed), else `Idempotency-Key`.
pub fn delivery_id(platform: Platform, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match platform {
        Platform::Github => &["X-GitHub-Delivery"],
        Platform::Gitlab => &["webhook-id", "Idempotency-Key"],
        Platform::Bitbucket => &["X-Request-UUID", "X-Request-Id"],
    };
    names
        .iter()
        .filter_map(|n| header(headers, n))
        .map(str::trim)
        .find(|v| !v.is_empty())
        // Bounded: the id goes into the store and the log.
        .map(|v| v.chars().take(200).collect())
}

/// What a push means, in words that stay the same however its JSON is written: the
/// platform, the repository, and each ref with the commit it now points to. The replay guard
/// keys on it: the same push sent again (under another delivery id, re-serialised) is the
/// same push. `None` when the body does not name them (then the guard keys on the body).
pub fn identity(platform: Platform, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // Each changed ref with the commit it points to now.
    type Refs = Vec<(Option<String>, Option<String>)>;
    let (repo, refs): (Option<String>, Refs) = match platform {
        Platform::Github => (
            text(&v["repository"]["id"]).or_else(|| text(&v["repository"]["full_name"])),
            vec![(text(&v["ref"]), text(&v["after"]))],
        ),
        Platform::Gitlab => (
            text(&v["project_id"]).or_else(|| text(&v["project"]["path_with_namespace"])),
            vec![(text(&v["ref"]), text(&v["after"]))],
        ),
        Platform::Bitbucket => {
            let repo = text(&v["repository"]["full_name"]).or_else(|| {
                let (key, slug) = (
                    text(&v["repository"]["project"]["key"])?,
                    text(&v["repository"]["slug"])?,
                );
                Some(format!("{key}/{slug}"))
            });
            let cloud = v["push"]["changes"].as_array().map(|changes| {
                changes
                    .iter()
                    .map(|c| {
                        let side = if c["new"].is_null() {
                            &c["old"]
                        } else {
                            &c["new"]
                        };
                        (text(&side["name"]), text(&c["new"]["target"]["hash"]))
                    })
                    .collect()
            });
            let dc = || {
                v["changes"].as_array().map(|changes| {
                    changes
                        .iter()
                        .map(|c| (text(&c["refId"]), text(&c["toHash"])))
                        .collect()
                })
            };
            (repo, cloud.or_else(dc).unwrap_or_default())
        }
    };
    let repo = repo?;
    if refs.is_empty() || refs.iter().any(|(r, _)| r.is_none()) {
        return None;
    }
    let mut out = format!("{platform}\n{repo}");
    for (reference, after) in refs {
        out.push_str(&format!(
            "\n{} {}",
            reference.unwrap_or_default(),
            after.unwrap_or_default()
        ));
    }
    Some(out)
}

/// One ref a push changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Commits pushed to (or a new) branch.
    Branch(String),
    /// The branch was deleted: nothing to scan.
    Deleted(String),
    /// A tag or another kind of ref (named by its full ref or name).
    NotABranch(String),
}

/// The refs a push body changed. GitHub and GitLab carry one (`ref` =
/// `refs/heads/<branch>`); a Bitbucket push may carry several (`git push --all`). Err when
/// the body is not the JSON the platform sends for a push.
pub fn changes(platform: Platform, body: &[u8]) -> Result<Vec<Change>, String> {
    match platform {
        Platform::Github => github(body),
        Platform::Gitlab => gitlab(body),
        Platform::Bitbucket => bitbucket(body),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a {what} payload: {e}"))
}

fn from_ref(full: &str, deleted: bool) -> Change {
    match full.strip_prefix("refs/heads/") {
        Some(b) if deleted => Change::Deleted(b.to_string()),
        Some(b) if !b.is_empty() => Change::Branch(b.to_string()),
        _ => Change::NotABranch(full.to_string()),
    }
}

fn github(body: &[u8]) -> Result<Vec<Change>, String> {
    // `before`, `after` and `pusher` are in every push and in no other event: the event
    // header is not signed, so a signed body of another kind that has a `ref` (a
    // `workflow_dispatch`, a `create`) must not pass for a push.
    #[derive(Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
        #[serde(default)]
        deleted: bool,
        #[allow(dead_code)]
        before: String,
        #[allow(dead_code)]
        after: String,
        #[allow(dead_code)]
        pusher: serde_json::Value,
    }
    let push: Push = parse(body, "GitHub push")?;
    Ok(vec![from_ref(&push.reference, push.deleted)])
}

fn gitlab(body: &[u8]) -> Result<Vec<Change>, String> {
    #[derive(Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
        after: Option<String>,
    }
    let push: Push = parse(body, "GitLab push")?;
    // A deleted branch is a push whose new revision is all zeros.
    let deleted = push
        .after
        .as_deref()
        .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b == b'0'));
    Ok(vec![from_ref(&push.reference, deleted)])
}

fn bitbucket(body: &[u8]) -> Result<Vec<Change>, String> {
    // Cloud (repo:push): push.changes[].new.{type,name}, new = null when deleted.
    #[derive(Deserialize)]
    struct CloudRef {
        #[serde(rename = "type")]
        kind: String,
        name: String,
    }
    #[derive(Deserialize)]
    struct CloudChange {
        new: Option<CloudRef>,
        old: Option<CloudRef>,
    }
    #[derive(Deserialize)]
    struct CloudPush {
        changes: Vec<CloudChange>,
    }
    // Data Center (repo:refs_changed): changes[].ref.{displayId,type}, type DELETE when deleted.
    #[derive(Deserialize)]
    struct DcRef {
        #[serde(rename = "displayId")]
        display_id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct DcChange {
        #[serde(rename = "ref")]
        reference: DcRef,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct Body {
        push: Option<CloudPush>,
        changes: Option<Vec<DcChange>>,
    }
    let body: Body = parse(body, "Bitbucket push")?;
    let is_branch = |kind: &str| matches!(kind, "branch" | "named_branch" | "BRANCH");
    match (body.push, body.changes) {
        (Some(push), _) => Ok(push
            .changes
            .into_iter()
            .filter_map(|c| match (c.new, c.old) {
                (Some(new), _) if is_branch(&new.kind) => Some(Change::Branch(new.name)),
                (Some(new), _) => Some(Change::NotABranch(new.name)),
                (None, Some(old)) if is_branch(&old.kind) => Some(Change::Deleted(old.name)),
                (None, Some(old)) => Some(Change::NotABranch(old.name)),
                (None, None) => None,
            })
            .collect()),
        (None, Some(changes)) => Ok(changes
            .into_iter()
            .map(|c| {
                let name = c.reference.display_id;
                if !is_branch(&c.reference.kind) {
                    Change::NotABranch(name)
                } else if c.kind == "DELETE" {
                    Change::Deleted(name)
                } else {
                    Change::Branch(name)
                }
            })
            .collect()),
        (None, None) => Err(
            "not a Bitbucket push payload: neither push.changes (Cloud) nor changes (Data Center)"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn push_events_by_platform_and_everything_else_is_other() {
        let gh = headers(&[("x-github-event", "push")]);
        assert_eq!(event(Platform::Github, &gh), Ok(Event::Push));
        let ping = headers(&[("x-github-event", "ping")]);
        assert_eq!(
            event(Platform::Github, &ping),
            Ok(Event::Other("ping".into()))
        );
        let gl = headers(&[("x-gitlab-event", "Push Hook")]);
        assert_eq!(event(Platform::Gitlab, &gl), Ok(Event::Push));
        let tag = headers(&[("x-gitlab-event", "Tag Push Hook")]);
        assert!(matches!(event(Platform::Gitlab, &tag), Ok(Event::Other(_))));
        for key in ["repo:push", "repo:refs_changed"] {
            let bb = headers(&[("x-event-key", key)]);
            assert_eq!(event(Platform::Bitbucket, &bb), Ok(Event::Push));
        }
        let diag = headers(&[("x-event-key", "diagnostics:ping")]);
        assert!(matches!(
            event(Platform::Bitbucket, &diag),
            Ok(Event::Other(_))
        ));
        // The event header of another platform does not count.
        assert!(event(Platform::Gitlab, &gh).is_err());
    }

    #[test]
    fn delivery_ids_by_platform() {
        let gh = headers(&[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]);
        assert_eq!(
            delivery_id(Platform::Github, &gh).as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        let cloud = headers(&[("x-request-uuid", "u-1")]);
        assert_eq!(
            delivery_id(Platform::Bitbucket, &cloud).as_deref(),
            Some("u-1")
        );
        let dc = headers(&[("x-request-id", "r-1")]);
        assert_eq!(
            delivery_id(Platform::Bitbucket, &dc).as_deref(),
            Some("r-1")
        );
        let gl = headers(&[("idempotency-key", "k-1"), ("webhook-id", "w-1")]);
        assert_eq!(delivery_id(Platform::Gitlab, &gl).as_deref(), Some("w-1"));
        let gl_plain = headers(&[("idempotency-key", "k-1")]);
        assert_eq!(
            delivery_id(Platform::Gitlab, &gl_plain).as_deref(),
            Some("k-1")
        );
        assert_eq!(delivery_id(Platform::Github, &HeaderMap::new()), None);
    }

    #[test]
    fn github_and_gitlab_branches_come_from_ref() {
        let body = br#"{"ref":"refs/heads/release/1.2","deleted":false,"before":"a0","after":"a1","pusher":{}}"#;
        assert_eq!(
            changes(Platform::Github, body),
            Ok(vec![Change::Branch("release/1.2".into())])
        );
        assert_eq!(
            changes(Platform::Gitlab, body),
            Ok(vec![Change::Branch("release/1.2".into())])
        );
        let tag = br#"{"ref":"refs/tags/v1.0","before":"a0","after":"a1","pusher":{}}"#;
        assert_eq!(
            changes(Platform::Github, tag),
            Ok(vec![Change::NotABranch("refs/tags/v1.0".into())])
        );
        let gh_deleted =
            br#"{"ref":"refs/heads/old","deleted":true,"before":"a0","after":"0000","pusher":{}}"#;
        assert_eq!(
            changes(Platform::Github, gh_deleted),
            Ok(vec![Change::Deleted("old".into())])
        );
        let gl_deleted =
            br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000"}"#;
        assert_eq!(
            changes(Platform::Gitlab, gl_deleted),
            Ok(vec![Change::Deleted("old".into())])
        );
    }

    #[test]
    fn bitbucket_cloud_branches_come_from_push_changes_new_name() {
        let body = br#"{"push":{"changes":[
            {"new":{"type":"branch","name":"main"},"old":{"type":"branch","name":"main"}},
            {"new":{"type":"tag","name":"v2"},"old":null},
            {"new":null,"old":{"type":"branch","name":"gone"}}]}}"#;
        assert_eq!(
            changes(Platform::Bitbucket, body),
            Ok(vec![
                Change::Branch("main".into()),
                Change::NotABranch("v2".into()),
                Change::Deleted("gone".into()),
            ])
        );
    }

    #[test]
    fn bitbucket_data_center_branches_come_from_changes_ref_display_id() {
        let body = br#"{"eventKey":"repo:refs_changed","changes":[
            {"ref":{"id":"refs/heads/release/7","displayId":"release/7","type":"BRANCH"},"refId":"refs/heads/release/7","type":"UPDATE"},
            {"ref":{"id":"refs/heads/old","displayId":"old","type":"BRANCH"},"refId":"refs/heads/old","type":"DELETE"},
            {"ref":{"id":"refs/tags/v1","displayId":"v1","type":"TAG"},"refId":"refs/tags/v1","type":"ADD"}]}"#;
        assert_eq!(
            changes(Platform::Bitbucket, body),
            Ok(vec![
                Change::Branch("release/7".into()),
                Change::Deleted("old".into()),
                Change::NotABranch("v1".into()),
            ])
        );
    }

    #[test]
    fn a_github_body_without_the_fields_of_a_push_is_not_a_push() {
        let dispatch = br#"{"ref":"refs/heads/main","inputs":{},"workflow":"scan.yml"}"#;
        let err = changes(Platform::Github, dispatch).unwrap_err();
        assert!(err.contains("not a GitHub push payload"), "{err}");
    }

    #[test]
    fn a_push_is_known_by_repository_refs_and_commits_however_it_is_written() {
        let a =
            br#"{"ref":"refs/heads/main","after":"c1","repository":{"id":7,"full_name":"o/r"}}"#;
        let b = br#"{ "repository": { "full_name": "o/r", "id": 7 },
                      "after": "c1", "ref": "refs/heads/main", "extra": 1 }"#;
        let c = br#"{"ref":"refs/heads/main","after":"c2","repository":{"id":7}}"#;
        let id = |body: &[u8]| identity(Platform::Github, body);
        assert_eq!(id(a), id(b));
        assert!(id(a).is_some());
        assert_ne!(id(a), id(c));
        assert_ne!(id(a), identity(Platform::Gitlab, a));
        let cloud = br#"{"repository":{"full_name":"o/r"},"push":{"changes":[
            {"new":{"type":"branch","name":"main","target":{"hash":"h1"}},"old":null}]}}"#;
        let dc = br#"{"repository":{"slug":"r","project":{"key":"O"}},
            "changes":[{"refId":"refs/heads/main","toHash":"h1","type":"UPDATE"}]}"#;
        assert!(identity(Platform::Bitbucket, cloud)
            .unwrap()
            .contains("main h1"));
        assert!(identity(Platform::Bitbucket, dc).unwrap().contains("O/r"));
        assert_eq!(
            identity(Platform::Github, br#"{"ref":"refs/heads/main"}"#),
            None
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for platform in Platform::ALL {
            assert!(changes(platform, b"not json").is_err(), "{platform}");
            assert!(changes(platform, b"{}").is_err(), "{platform}");
            assert!(changes(platform, br#"{"ref": 5}"#).is_err(), "{platform}");
        }
    }
}
