//! Globs for `webhook.branches` and `[[suppress]] path`, in the dialect of GitHub's branch
//! and path filters: `*`
//! matches within one path segment (not `/`), `**` matches across segments, `?` matches one
//! character other than `/`; everything else is literal. So `release/*` matches
//! `release/1.2` but not `release/1.2/hotfix`, and `**` matches every branch. GitHub's
//! `[...]` classes and leading `!` (negation) are not in the dialect: here they would be
//! literal and never match (git refuses `[` in branch names), so the config check refuses
//! them (`config::branch_glob_problem`) rather than let a pattern silently match nothing.
//!
//! Paths ([`path_matches`]) add one rule GitHub's path filters and `.gitignore` have: `**/`
//! also matches no folder at all, so `**/test/**` matches `test/a.rs` as well as
//! `src/test/a.rs`. It is a leaf module because both the listener (branches) and the store's
//! suppression rules (paths) use it.
//!
//! A dozen lines of our own rather than `globset`: branch names are not paths (no
//! separators to normalise, no case folding, no character classes wanted), and globset
//! would bring a regex engine for four operators.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Segment,
    /// `**`
    Any,
    /// `**/` in a path pattern: nothing, or anything that ends with `/`.
    AnyFolders,
}

fn tokens(pattern: &str, paths: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '?' => Token::One,
            '*' if chars.peek() == Some(&'*') => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                if paths && chars.peek() == Some(&'/') {
                    chars.next();
                    Token::AnyFolders
                } else {
                    Token::Any
                }
            }
            '*' => Token::Segment,
            c => Token::Char(c),
        });
    }
    out
}

/// True when `branch` matches `pattern`. Linear in pattern × branch length whatever the
/// pattern, so an untrusted branch name cannot make it slow.
pub fn matches(pattern: &str, branch: &str) -> bool {
    run(&tokens(pattern, false), branch)
}

/// True when the file or API path `path` matches `pattern` (see the module docs): the whole
/// path must match, so `*.test.js` matches only at the top; `**/*.test.js` anywhere. A
/// leading `./` or `/` on either side is ignored, and backslashes count as `/`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let clean = |s: &str| {
        let s = s.replace('\\', "/");
        let mut t = s.as_str();
        loop {
            if let Some(rest) = t.strip_prefix("./") {
                t = rest;
            } else if let Some(rest) = t.strip_prefix('/') {
                t = rest;
            } else {
                break;
            }
        }
        t.to_string()
    };
    run(&tokens(&clean(pattern), true), &clean(path))
}

fn run(pattern: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // reach[j]: the tokens consumed so far can match exactly text[..j].
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for &token in pattern {
        let mut next = vec![false; text.len() + 1];
        // Whether any of reach[..j] holds, for `**/`.
        let mut reached_before = false;
        for j in 0..=text.len() {
            match token {
                Token::Char(c) => next[j] = j > 0 && reach[j - 1] && text[j - 1] == c,
                Token::One => next[j] = j > 0 && reach[j - 1] && text[j - 1] != '/',
                Token::Segment => {
                    next[j] = reach[j] || (j > 0 && next[j - 1] && text[j - 1] != '/')
                }
                Token::Any => next[j] = reach[j] || (j > 0 && next[j - 1]),
                Token::AnyFolders => {
                    next[j] = reach[j] || (j > 0 && reached_before && text[j - 1] == '/')
                }
            }
            reached_before |= reach[j];
        }
        reach = next;
    }
    reach[text.len()]
}

/// True when `branch` matches any of `patterns`.
pub fn matches_any(patterns: &[String], branch: &str) -> bool {
    patterns.iter().any(|p| matches(p, branch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "main2"));
        assert!(!matches("main", "mai"));
        assert!(!matches("main", "feature/main"));
    }

    #[test]
    fn a_star_stays_within_one_segment() {
        assert!(matches("release/*", "release/1.2"));
        assert!(matches("release/*", "release/"));
        assert!(!matches("release/*", "release/1.2/hotfix"));
        assert!(!matches("release/*", "release"));
        assert!(matches("feature-*", "feature-login"));
        assert!(!matches("*", "feature/login"));
        assert!(matches("*", "main"));
        assert!(matches("*/fix-*", "team/fix-42"));
    }

    #[test]
    fn a_double_star_crosses_segments() {
        assert!(matches("**", "feature/a/b"));
        assert!(matches("**", ""));
        assert!(matches("release/**", "release/1.2/hotfix"));
        assert!(matches("**/hotfix", "release/1.2/hotfix"));
        assert!(!matches("release/**", "releases/1"));
    }

    #[test]
    fn a_question_mark_is_one_character_but_not_a_slash() {
        assert!(matches("v?", "v1"));
        assert!(!matches("v?", "v12"));
        assert!(!matches("a?b", "a/b"));
    }

    #[test]
    fn other_characters_are_literal() {
        assert!(matches("fix[1]", "fix[1]"));
        assert!(!matches("fix[1]", "fix1"));
        assert!(matches("ünïcode/*", "ünïcode/ß"));
    }

    #[test]
    fn many_stars_against_a_long_name_stay_fast() {
        // Exponential for a naive backtracking matcher; linear here.
        let branch = "a".repeat(2000);
        assert!(!matches("*a*a*a*a*a*a*a*a*a*a*b", &branch));
        assert!(matches("**a**a**a**", &branch));
    }

    #[test]
    fn a_path_double_star_slash_also_matches_no_folder() {
        assert!(path_matches("**/test/**", "test/a.rs"));
        assert!(path_matches("**/test/**", "src/test/a.rs"));
        assert!(path_matches("**/test/**", "./src/deep/test/x/y.rs"));
        assert!(!path_matches("**/test/**", "src/testing/a.rs"));
        assert!(path_matches("**/*.spec.ts", "a.spec.ts"));
        assert!(path_matches("**/*.spec.ts", "web/b/a.spec.ts"));
        assert!(!path_matches("*.spec.ts", "web/a.spec.ts"));
        assert!(path_matches("tests/**", "/tests/unit/a.py"));
        assert!(path_matches("vendor/*", "vendor\\lib.js"));
        // Branches keep GitHub's branch dialect: `**/x` needs a folder there.
        assert!(!matches("**/hotfix", "hotfix"));
    }

    #[test]
    fn matches_any_tries_each_pattern() {
        let patterns = vec!["main".to_string(), "release/*".to_string()];
        assert!(matches_any(&patterns, "main"));
        assert!(matches_any(&patterns, "release/2026.1"));
        assert!(!matches_any(&patterns, "develop"));
        assert!(!matches_any(&[], "main"));
    }
}
