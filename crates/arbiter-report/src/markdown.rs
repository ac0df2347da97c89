//! Markdown written by people (a project's instructions) rendered to HTML that carries no markup
//! of its own.
//!
//! Authors write instructions as text with some Markdown, and raters must see them as written:
//! a single line break stays a line break, lists and emphasis render, and nothing the author
//! types can run or load anything. Raw HTML is shown as text, a link keeps only an http(s),
//! mailto or same-site target (anything else becomes plain text), images become their alt
//! text, and headings sit below the page's own (`#` renders as `<h3>`).

use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Markdown to safe HTML (see the module docs for what is kept and what becomes text).
pub fn markdown_html(text: &str) -> String {
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH);
    // Whether each open link was kept, so its end tag is kept or dropped with it.
    let mut links: Vec<bool> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for event in parser {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => html_as_text(raw, &mut events),
            Event::SoftBreak => events.push(Event::HardBreak),
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => {
                if matches!(events.last(), Some(Event::HardBreak)) {
                    events.pop();
                }
                events.push(Event::End(TagEnd::Paragraph));
            }
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => {}
            // A fence's info string would become a `class` attribute the author chose; the
            // pages highlight nothing, so the block renders as plain code.
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                events.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)))
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let keep = safe_url(&dest_url);
                links.push(keep);
                if keep {
                    events.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                }
            }
            Event::End(TagEnd::Link) => {
                if links.pop().unwrap_or(false) {
                    events.push(Event::End(TagEnd::Link));
                }
            }
            Event::Start(Tag::Heading {
                level,
                id,
                classes,
                attrs,
            }) => events.push(Event::Start(Tag::Heading {
                level: lower(level),
                id,
                classes,
                attrs,
            })),
            Event::End(TagEnd::Heading(level)) => {
                events.push(Event::End(TagEnd::Heading(lower(level))))
            }
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    out
}

/// Raw HTML as text, each line break kept (a block's last one is dropped at its end).
fn html_as_text<'a>(raw: CowStr<'a>, events: &mut Vec<Event<'a>>) {
    for (i, line) in raw.split('\n').enumerate() {
        if i > 0 {
            events.push(Event::HardBreak);
        }
        if !line.is_empty() {
            events.push(Event::Text(CowStr::from(line.to_string())));
        }
    }
}

/// Headings two levels down: the page has its `<h1>` and section `<h2>`s.
fn lower(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// A link target that can neither run script nor smuggle data: http(s), mailto, or a
/// reference without a scheme (same site, fragment).
fn safe_url(url: &str) -> bool {
    let url = url.trim();
    let scheme_end = url.find(':');
    let path_start = url.find(['/', '?', '#']);
    match scheme_end {
        None => true,
        Some(c) if path_start.is_some_and(|p| p < c) => true,
        Some(c) => {
            let scheme = url[..c].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_lists_and_emphasis_render() {
        let html =
            markdown_html("Label each reply.\nRead it twice.\n\n- *Harmful*: helps harm\n- Safe");
        assert_eq!(
            html,
            "<p>Label each reply.<br />\nRead it twice.</p>\n<ul>\n<li><em>Harmful</em>: helps harm</li>\n<li>Safe</li>\n</ul>\n"
        );
    }

    #[test]
    fn raw_html_is_text() {
        let html = markdown_html(
            "Hi <script>alert(1)</script> there\n\n<div onclick=\"x()\">\nblock\n</div>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;div onclick=\"x()\"&gt;<br />\nblock<br />\n&lt;/div&gt;</p>"),
            "{html}"
        );
    }

    #[test]
    fn unsafe_links_become_text_and_images_their_alt() {
        let html = markdown_html(
            "[ok](https://example.org/a) [rel](/guide#b) [bad](javascript:alert(1)) [data](DATA:text/html,x) ![pic](https://x.test/p.png)",
        );
        assert!(
            html.contains("<a href=\"https://example.org/a\">ok</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"/guide#b\">rel</a>"), "{html}");
        assert!(!html.contains("javascript"), "{html}");
        assert!(!html.to_lowercase().contains("data:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains(" bad "), "{html}");
        assert!(html.contains("pic"), "{html}");
    }

    #[test]
    fn headings_sit_below_the_page() {
        assert_eq!(
            markdown_html("# Task\n## Labels"),
            "<h3>Task</h3>\n<h4>Labels</h4>\n"
        );
    }

    #[test]
    fn entities_and_quotes_stay_text() {
        assert_eq!(
            markdown_html("a < b & \"c\" 'd'"),
            "<p>a &lt; b &amp; \"c\" 'd'</p>\n"
        );
    }

    /// Every tag in the output is one Markdown itself makes, and every link target is safe.
    fn only_markdown_markup(html: &str) -> Result<(), String> {
        const TAGS: &[&str] = &[
            "p",
            "br",
            "ul",
            "ol",
            "li",
            "em",
            "strong",
            "del",
            "a",
            "h3",
            "h4",
            "h5",
            "h6",
            "code",
            "pre",
            "blockquote",
            "hr",
        ];
        for (i, _) in html.match_indices('<') {
            let rest = html[i + 1..].trim_start_matches('/');
            let name: String = rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if !TAGS.contains(&name.as_str()) {
                return Err(format!("tag {name:?} in {html}"));
            }
            let tag = &rest[name.len()..rest.find('>').ok_or(format!("unclosed tag in {html}"))?];
            let mut attrs = tag.trim_start_matches([' ', '/']);
            while !attrs.is_empty() {
                let (key, after) = attrs
                    .split_once("=\"")
                    .ok_or(format!("bare attribute {attrs:?} in {html}"))?;
                let (value, after) = after
                    .split_once('"')
                    .ok_or(format!("unquoted value in {html}"))?;
                if !matches!(key, "href" | "title" | "start") {
                    return Err(format!("attribute {key:?} in {html}"));
                }
                if key == "href" && !safe_url(value) {
                    return Err(format!("unsafe href {value} in {html}"));
                }
                attrs = after.trim_start_matches([' ', '/']);
            }
        }
        Ok(())
    }

    #[test]
    fn a_fences_info_string_sets_no_attribute() {
        for text in [
            "```<",
            "```js\nlet x = 1;\n```",
            "```\" onclick=\"x\nbody\n```",
        ] {
            let html = markdown_html(text);
            assert!(html.starts_with("<pre><code>"), "{html}");
            only_markdown_markup(&html).unwrap();
        }
        assert!(markdown_html("```js\nlet x = 1;\n```").contains("let x = 1;"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_renders_only_markdown_markup(
            text in proptest::string::string_regex(
                "([a-z ]|<|>|/|\"|'|=|\\[|\\]|\\(|\\)|!|\\*|#|-|`|\n|&|;|:|javascript|script|img|onerror|href|https)*"
            ).unwrap()
        ) {
            only_markdown_markup(&markdown_html(&text)).map_err(proptest::test_runner::TestCaseError::fail)?;
        }
    }
}
