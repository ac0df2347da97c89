//! The CrowdWorkSheets datasheet, and its Markdown and HTML renderings.

use crate::db::{Pool, Project};
use crate::model::LabelSchema;
use crate::release;

use super::dashboard::Dashboard;
use super::demographics::QuestionGroups;

/// Inputs to the datasheet beyond the dashboard.
pub struct DatasheetInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// Dashboard computed from the same records.
    pub dashboard: &'a Dashboard,
    /// Instruction versions with label counts.
    pub versions: &'a [(i64, String, i64)],
    /// Pools.
    pub pools: &'a [Pool],
    /// k-anonymous demographics.
    pub demographics: &'a [QuestionGroups],
    /// Items with a content warning.
    pub warned_items: usize,
    /// Items hidden until the rater shows them.
    pub hidden_items: usize,
}

/// One datasheet answer: checklist number, question, answer.
pub type SheetItem = (u8, &'static str, String);
/// A datasheet section: title and answers.
pub type SheetSection = (&'static str, Vec<SheetItem>);

/// The CrowdWorkSheets datasheet, by section.
pub fn datasheet(input: &DatasheetInput) -> Vec<SheetSection> {
    let spec = &input.project.spec;
    let k = release::k_of(spec.k_min);
    let d = input.dashboard;
    let note = |n: u8| -> String {
        spec.datasheet_notes
            .get(&n.to_string())
            .cloned()
            .unwrap_or_else(|| "Not recorded by the project (add datasheet_notes).".into())
    };
    let fmt_alpha = |a: Option<f64>| a.map_or("undefined".to_string(), |v| format!("{v:.3}"));
    let pools_text = input
        .pools
        .iter()
        .map(|p| match (&p.rule_question, &p.rule_answer) {
            (Some(q), Some(a)) => format!(
                "{} (raters answering {q:?} with {a:?}, or invited to it)",
                p.name
            ),
            _ => format!("{} (by invitation)", p.name),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let demo = if input.demographics.is_empty() {
        "No identity questionnaire was asked.".to_string()
    } else {
        input
            .demographics
            .iter()
            .map(|q| {
                let mut parts: Vec<String> =
                    q.groups.iter().map(|(a, c)| format!("{a}: {c}")).collect();
                if let Some(m) = q.merged_small_groups {
                    parts.push(format!("merged smaller groups: {m}"));
                }
                if q.withheld {
                    parts.push(match &q.note {
                        Some(note) => format!("withheld ({note})"),
                        None => format!("fewer than k = {k} raters: withheld"),
                    });
                }
                format!("{}: {}", q.question, parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join(". ")
    };
    let effective: Vec<f64> = d.ledger.iter().filter_map(|l| l.effective_hourly).collect();
    let median = median(&effective);
    let below = d
        .ledger
        .iter()
        .filter(|l| l.meets_standard == Some(false))
        .count();
    let gold_text = if d.gold.is_empty() {
        "No gold items answered yet.".to_string()
    } else {
        let flagged = d.gold.iter().filter(|g| g.below_threshold).count();
        format!(
            "Gold items with known answers are mixed into each pool's queue; raters see feedback after answering. {} raters answered gold items; {flagged} are below the accuracy threshold of {:.2}.",
            d.gold.len(),
            spec.gold_min_accuracy
        )
    };
    let pool_alphas = d
        .pools
        .iter()
        .map(|p| format!("{}: {}", p.name, fmt_alpha(p.alpha_within)))
        .collect::<Vec<_>>()
        .join(", ");
    let dividing = d
        .dividing_items
        .iter()
        .take(5)
        .map(|i| format!("{} ({:.2})", i.item, i.divergence))
        .collect::<Vec<_>>()
        .join(", ");
    let versions = input
        .versions
        .iter()
        .map(|(v, _, n)| format!("version {v} ({n} labels)"))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        (
            "Task formulation",
            vec![
                (1, "Which aspects of the task are subjective?", note(1)),
                (2, "What was assumed about annotators?", note(2)),
                (
                    3,
                    "How were instructions worded and their clarity tested?",
                    format!("{} Instruction versions: {versions}.", note(3)),
                ),
                (
                    4,
                    "Risks to annotators; warning and consent before work.",
                    format!(
                        "Consent screen shown before any item: \"{}\". Project content warning: {}. {} items carry an item-level warning; {} items are hidden until the rater chooses to show them (and can hide them again), and cannot be labelled unseen. Exposure caps: {} items per session with a {}-minute break, {} per day; skipping carries no penalty.",
                        spec.consent_text,
                        spec.content_warning.as_deref().unwrap_or("none"),
                        input.warned_items,
                        input.hidden_items,
                        spec.session_cap,
                        spec.break_minutes,
                        spec.daily_cap
                    ),
                ),
                (
                    5,
                    "Exact instructions shown, versioned and linked to each label.",
                    format!(
                        "Every label records the instructions version it was made under; the current version is {}. {versions}. Each version's text is at the end of this datasheet.",
                        input.project.instructions_version
                    ),
                ),
            ],
        ),
        (
            "Selecting annotators",
            vec![
                (
                    6,
                    "Perspectives deliberately sought, and how.",
                    format!(
                        "Pools: {pools_text}. Overlap: {} raters per item from each pool. {}",
                        spec.overlap_per_pool,
                        note(6)
                    ),
                ),
                (7, "Perspectives screened out as harmful, and how.", note(7)),
                (
                    8,
                    "Whether and how demographics drove selection.",
                    format!(
                        "Pools defined by questionnaire answers: {}. The questionnaire is optional and every question allows \"prefer not to say\".",
                        if input.pools.iter().any(|p| p.rule_question.is_some()) {
                            "yes"
                        } else {
                            "no"
                        }
                    ),
                ),
                (
                    9,
                    "Aggregate pool demographics and their plausible effect on labels.",
                    format!(
                        "Self-described, groups of at least k = {k} only, from release {} of the counts. {demo}. Pool sizes: {}. {}",
                        d.release.0,
                        d.pools
                            .iter()
                            .map(|p| match p.raters {
                                Some(n) => format!("{} {n}", p.name),
                                None => format!("{} withheld", p.name),
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        privacy_rule(k)
                    ),
                ),
                (
                    10,
                    "Whether affected communities are in the pool.",
                    note(10),
                ),
            ],
        ),
        (
            "Platform and infrastructure",
            vec![
                (
                    11,
                    "Platform used, why, and its gaps.",
                    format!(
                        "Arbiter annotation server (self-hosted, open source). {}",
                        note(11)
                    ),
                ),
                (
                    12,
                    "Channels to annotators and their effect on labels.",
                    format!("Invitation codes per pool. {}", note(12)),
                ),
                (
                    13,
                    "Pay and the standard used to set it.",
                    format!(
                        "{:.2} {} per completed item (skips included); standard {:.2} {}/hour ({}). Median effective hourly pay over raters with at least {} minutes on task {}; {below} raters below the standard.",
                        spec.pay_per_item,
                        spec.currency,
                        spec.pay_standard_per_hour,
                        spec.currency,
                        if spec.pay_standard_source.is_empty() {
                            "source not stated"
                        } else {
                            &spec.pay_standard_source
                        },
                        super::ledger::MIN_MINUTES_FOR_RATE,
                        median.map_or("not yet measurable".into(), |m| format!(
                            "{m:.2} {}",
                            spec.currency
                        ))
                    ),
                ),
            ],
        ),
        (
            "Dataset analysis and evaluation",
            vec![
                (
                    14,
                    "Definition and measurement of label quality.",
                    gold_text,
                ),
                (
                    15,
                    "Disagreement analysis: method, findings, sources.",
                    format!(
                        "Krippendorff's alpha ({} level): pooled {}, between pool majorities {}, within pools {pool_alphas}. Items dividing pools most (total-variation distance): {}.",
                        if matches!(spec.label_schema, LabelSchema::Ordinal { .. }) {
                            "ordinal"
                        } else {
                            "nominal"
                        },
                        fmt_alpha(d.alpha_pooled),
                        fmt_alpha(d.alpha_between_pools),
                        if dividing.is_empty() {
                            "none yet".into()
                        } else {
                            dividing
                        }
                    ),
                ),
                (
                    16,
                    "How individual answers become released labels.",
                    format!(
                        "Exports release every individual label with a pseudonymous rater id and pool, so each viewpoint can be modelled; no aggregate is imposed. {}",
                        note(16)
                    ),
                ),
            ],
        ),
        (
            "Dataset release and maintenance",
            vec![
                (17, "Whether labels may change; update plan.", note(17)),
                (
                    18,
                    "Definitions whose change would invalidate the data.",
                    format!(
                        "Label schema: {:?}. {}",
                        spec.label_schema.labels(),
                        note(18)
                    ),
                ),
                (19, "Tracking and usage limits.", note(19)),
                (
                    20,
                    "Telling annotators how data is released and of changes.",
                    format!("Stated in the consent text raters accept. {}", note(20)),
                ),
                (
                    21,
                    "A withdrawal path for annotators' data.",
                    format!(
                        "Each rater gets a withdrawal code at consent and can withdraw at any time with it, signed in or not; the project team can also erase a rater on request. Withdrawal erases every record of the rater (answers, labels, exposures, sessions and the rater record itself; on SQLite the freed space is overwritten and the write-ahead log truncated). Pay already earned stays owed, recorded without any link to the rater. {} raters have withdrawn.",
                        d.withdrawn
                    ),
                ),
            ],
        ),
    ]
}

/// The privacy rule in words, for the datasheet.
pub fn privacy_rule(k: usize) -> String {
    format!(
        "Privacy rule: no group of fewer than k = {k} raters is published. Pools chosen by an identity answer appear only as classes of at least k raters (smaller pools are merged), and that answer is released only in this form. Answers to other questions are published as counts of at least k, merged otherwise, from releases that change only when every count both releases determine has moved by at least k, so comparing two releases isolates no smaller group. Exported labels carry a pseudonym and the pool class."
    )
}

/// Escapes text for Markdown so a project's own words cannot inject links, images, HTML,
/// emphasis or block structure into the datasheet: the answer becomes one paragraph of text.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    // A paragraph opening with a heading, list or rule marker would become one.
    let digits = out.chars().take_while(char::is_ascii_digit).count();
    let first = out.chars().next();
    if matches!(first, Some('#' | '-' | '+' | '=')) {
        out.insert(0, '\\');
    } else if digits > 0
        && matches!(out[digits..].chars().next(), Some('.' | ')'))
        && out[digits + 1..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
    {
        out.insert(digits, '\\');
    }
    out
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    })
}

/// The heading of the appendix holding each instructions version's text.
const INSTRUCTIONS_HEADING: &str = "Instructions as shown to raters";

/// Markdown rendering of the datasheet. Each instructions version follows as a fenced block:
/// exactly the text raters read (its line breaks kept), inert in any Markdown viewer.
pub fn datasheet_markdown(
    name: &str,
    sheet: &[SheetSection],
    versions: &[(i64, String, i64)],
) -> String {
    let mut out = format!(
        "# Datasheet (CrowdWorkSheets): {}\n\nGenerated by the Arbiter annotation server from the project's records.\n",
        escape_markdown(name)
    );
    for (section, items) in sheet {
        out.push_str(&format!("\n## {section}\n"));
        for (n, q, a) in items {
            out.push_str(&format!("\n**{n}. {q}**\n\n{}\n", escape_markdown(a)));
        }
    }
    if !versions.is_empty() {
        out.push_str(&format!("\n## {INSTRUCTIONS_HEADING}\n"));
        for (v, body, n) in versions {
            let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat((longest + 1).max(3));
            out.push_str(&format!(
                "\n**Version {v}** ({n} labels)\n\n{fence}text\n{}\n{fence}\n",
                body.trim_end_matches(['\n', '\r'])
            ));
        }
    }
    out
}

/// Enough style that the datasheet reads on a phone: long words and URLs wrap instead of
/// widening the page.
const DATASHEET_STYLE: &str = "body{margin:0 auto;padding:0 1rem;max-width:50rem;font-family:system-ui,sans-serif;line-height:1.5;overflow-wrap:anywhere}dd{margin:0 0 1rem 1rem}";

/// HTML rendering of the datasheet; each instructions version is rendered as raters see it
/// (Markdown, with no markup of its own).
pub fn datasheet_html(
    name: &str,
    sheet: &[SheetSection],
    versions: &[(i64, String, i64)],
) -> String {
    use arbiter_report::escape_html as esc;
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Datasheet: {0}</title><style>{DATASHEET_STYLE}</style></head><body><main><h1>Datasheet (CrowdWorkSheets): {0}</h1><p>Generated by the Arbiter annotation server from the project's records.</p>",
        esc(name)
    );
    for (section, items) in sheet {
        out.push_str(&format!("<section><h2>{}</h2><dl>", esc(section)));
        for (n, q, a) in items {
            out.push_str(&format!("<dt>{n}. {}</dt><dd>{}</dd>", esc(q), esc(a)));
        }
        out.push_str("</dl></section>");
    }
    if !versions.is_empty() {
        out.push_str(&format!(
            "<section id=\"instructions\"><h2>{INSTRUCTIONS_HEADING}</h2>"
        ));
        for (v, body, n) in versions {
            out.push_str(&format!(
                "<h3>Version {v} ({n} labels)</h3><div class=\"instructions\">{}</div>",
                arbiter_report::markdown_html(body)
            ));
        }
        out.push_str("</section>");
    }
    out.push_str("</main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::csv_cell;

    #[test]
    fn csv_cells_that_spreadsheets_would_run_become_text() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "@SUM(A1)",
            "+1+cmd|' /C calc'!A0",
            "-2",
            "\tx",
            "\rx",
        ] {
            assert!(csv_cell(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(csv_cell("plain"), "plain");
    }

    #[test]
    fn markdown_is_escaped() {
        let e = escape_markdown("[click](http://evil) <img src=x> # h\n**b**");
        assert!(e.starts_with("\\[click\\](") && !e.contains(" <img") && !e.contains('\n'));
        assert!(e.contains("\\<img") && e.contains("\\*\\*b"));
        assert_eq!(escape_markdown("# title"), "\\# title");
        assert_eq!(escape_markdown("12. item"), "12\\. item");
        assert_eq!(escape_markdown("0.25 USD"), "0.25 USD");
        assert!(e.contains("\\[click\\]"));
    }
    #[test]
    fn html_datasheet_fits_a_phone_and_escapes() {
        let sheet: Vec<SheetSection> = vec![("Task <b>", vec![(1, "Q?", "a".repeat(300))])];
        let html = datasheet_html("<i>pilot</i>", &sheet, &[]);
        assert!(
            html.contains(
                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            )
        );
        assert!(html.contains("overflow-wrap:anywhere") && html.contains("max-width:"));
        assert!(html.contains("&lt;i&gt;pilot") && html.contains("Task &lt;b&gt;"));
        assert!(!html.contains("<i>pilot"));
    }

    #[test]
    fn instructions_keep_their_lines_in_both_renderings() {
        let versions = vec![
            (
                1,
                "Label each reply.\nRead it twice.\n\n- <b>toxic</b>".to_string(),
                3,
            ),
            (2, "Uses ``` fences\nand more".to_string(), 0),
        ];
        let html = datasheet_html("pilot", &[], &versions);
        assert!(
            html.contains("<h3>Version 1 (3 labels)</h3><div class=\"instructions\"><p>Label each reply.<br />\nRead it twice.</p>"),
            "{html}"
        );
        assert!(html.contains("<li>&lt;b&gt;toxic&lt;/b&gt;</li>") && !html.contains("<b>toxic"));
        let md = datasheet_markdown("pilot", &[], &versions);
        assert!(
            md.contains("**Version 1** (3 labels)\n\n```text\nLabel each reply.\nRead it twice.\n\n- <b>toxic</b>\n```\n"),
            "{md}"
        );
        // A fence longer than any run of backticks inside keeps the block closed.
        assert!(
            md.contains("````text\nUses ``` fences\nand more\n````\n"),
            "{md}"
        );
    }
}
