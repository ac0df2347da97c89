//! Report building blocks shared by every Arbiter report (RBR, evals, annotation).
//!
//! - [`Table`]: one table rendered both as Markdown and as HTML.
//! - [`Page`]: a self-contained HTML document (inline CSS, inline SVG, no scripts, no network).
//! - [`markdown_html`]: people's Markdown (instructions) as HTML that carries no markup of its own.
//! - [`svg`]: small plots drawn by hand, so reports need no plotting or font dependency.
//!
//! Everything returns `String`s; writing files is the caller's business.

#![deny(missing_docs)]

mod markdown;
pub mod svg;

pub use markdown::markdown_html;

/// Escape text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escape text for a Markdown table cell with backslashes, so the raw file still reads as the
/// text (`>65` stays `>65`): pipes, backslashes, `<` (no HTML tag can start) and `&` before a
/// letter or `#` (no entity can form); line breaks become spaces.
pub fn escape_markdown_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' | '\\' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '&' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '#') =>
            {
                out.push_str("\\&")
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A table with a header row, rendered to Markdown or HTML.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row; short rows are padded with empty cells.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.header.len().max(row.len()), String::new());
        self.rows.push(row);
        self
    }

    /// Number of body rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no body rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| {
            let escaped: Vec<String> = cells.iter().map(|c| escape_markdown_cell(c)).collect();
            format!("| {} |\n", escaped.join(" | "))
        };
        let mut out = line(&self.header);
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// An HTML `<table>`; cells that look numeric are right-aligned.
    pub fn to_html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.header {
            let class = if has_long_token(h) {
                " class=\"long\""
            } else {
                ""
            };
            out.push_str(&format!("<th scope=\"col\"{class}>{}</th>", escape_html(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                // A number leads the cell ("0.81 [0.7, 0.9]", "839 (0)", "-1.2%"); a range
                // label such as "18–24" or "65+" is text.
                let numeric = c
                    .split_whitespace()
                    .next()
                    .map(|t| t.trim_end_matches(['%', ',']))
                    .is_some_and(|t| t.parse::<f64>().is_ok_and(f64::is_finite));
                let class = match (numeric, has_long_token(c)) {
                    (true, true) => " class=\"num long\"",
                    (true, false) => " class=\"num\"",
                    (false, true) => " class=\"long\"",
                    (false, false) => "",
                };
                out.push_str(&format!("<td{class}>{}</td>", escape_html(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

/// Whether `text` holds a run of more than 24 characters without a space (a path, a model id,
/// a URL): only such cells may break anywhere; ordinary words keep whole, so a narrow column
/// reads "complete", not "comple / te".
fn has_long_token(text: &str) -> bool {
    text.split_whitespace().any(|w| w.chars().count() > 24)
}

/// A self-contained HTML page assembled from sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    title: String,
    body: String,
}

/// Nothing may be wider than the content column: long tokens (model ids, grader digests, paths)
/// wrap anywhere, tables shrink to the column instead of scrolling sideways, and plots scale
/// down with their viewBox.
const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45;overflow-wrap:break-word}\
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem;margin-top:1.5rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;max-width:100%}th,td{border:1px solid #ccc;padding:.25rem .6rem}.long{overflow-wrap:anywhere}\
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.note{color:#555;font-size:.9rem}figure{margin:1rem 0;max-width:100%}figcaption{color:#555;font-size:.9rem}svg{max-width:100%;height:auto}";

impl Page {
    /// A page with a title (also the first heading).
    pub fn new(title: &str) -> Self {
        Page {
            title: title.to_string(),
            body: String::new(),
        }
    }

    /// A section heading.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.body
            .push_str(&format!("<h2>{}</h2>\n", escape_html(text)));
        self
    }

    /// A subsection heading.
    pub fn subheading(&mut self, text: &str) -> &mut Self {
        self.body
            .push_str(&format!("<h3>{}</h3>\n", escape_html(text)));
        self
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        self.body
            .push_str(&format!("<p>{}</p>\n", escape_html(text)));
        self
    }

    /// A muted note.
    pub fn note(&mut self, text: &str) -> &mut Self {
        self.body
            .push_str(&format!("<p class=\"note\">{}</p>\n", escape_html(text)));
        self
    }

    /// A table.
    pub fn table(&mut self, table: &Table) -> &mut Self {
        self.body.push_str(&table.to_html());
        self
    }

    /// An inline SVG figure with a caption.
    pub fn figure(&mut self, svg: &str, caption: &str) -> &mut Self {
        self.body.push_str(&format!(
            "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
            escape_html(caption)
        ));
        self
    }

    /// The complete document.
    pub fn render(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{t}</h1>\n{}</main>\n</body>\n</html>\n",
            self.body,
            t = escape_html(&self.title)
        )
    }
}

/// Format a number with a fixed count of decimals, or an en dash when absent.
pub fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_stay_readable() {
        assert_eq!(escape_markdown_cell(">65 & more"), ">65 & more");
        assert_eq!(escape_markdown_cell("&lt; a\\b"), "\\&lt; a\\\\b");
    }

    #[test]
    fn table_renders_and_escapes() {
        let mut t = Table::new(["name", "value"]);
        t.row(["a|b", "1.5"]).row(["<x>"]);
        assert_eq!(
            t.to_markdown(),
            "| name | value |\n|---|---|\n| a\\|b | 1.5 |\n| \\<x> |  |\n"
        );
        let html = t.to_html();
        assert!(html.contains("<td>&lt;x&gt;</td>"));
        assert!(html.contains("<td class=\"num\">1.5</td>"));
    }

    #[test]
    fn page_is_self_contained() {
        let mut p = Page::new("R & D");
        p.heading("h").paragraph("<script>");
        let html = p.render();
        assert!(html.contains("<title>R &amp; D</title>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http"));
    }

    #[test]
    fn page_css_keeps_everything_within_the_column() {
        let html = Page::new("t").render();
        assert!(html.contains(".long{overflow-wrap:anywhere}"));
        assert!(html.contains("svg{max-width:100%;height:auto}"));
        assert!(!html.contains("overflow-x") && !html.contains("nowrap"));
        // Only cells with a long unbroken run may break anywhere.
        let mut t = Table::new(["run", "status"]);
        t.row(["/tmp/a-very-long-run-directory/run-0-xstest", "complete"]);
        let cells = t.to_html();
        assert!(
            cells.contains("<td class=\"long\">/tmp/a-very-long"),
            "{cells}"
        );
        assert!(cells.contains("<td>complete</td>"), "{cells}");
        let mut t = Table::new(["group", "n", "rate"]);
        t.row(["18–24", "8945", "0.66 [0.65, 0.67]"]);
        let cells = t.to_html();
        assert!(
            cells.contains("<td>18–24</td><td class=\"num\">8945</td><td class=\"num\">0.66"),
            "{cells}"
        );
    }

    #[test]
    fn fmt_opt_handles_missing() {
        assert_eq!(fmt_opt(Some(1.234), 1), "1.2");
        assert_eq!(fmt_opt(None, 1), "–");
        assert_eq!(fmt_opt(Some(f64::NAN), 1), "–");
    }
}
