//! Boolean rule expressions over propositions: `a & !b | (c & d)`.
//!
//! Policies write rules as text; this module parses them into a small tree whose variables are
//! proposition names. `!` binds tightest, then `&`, then `|`; the words `not`, `and`, `or`,
//! `true`, `false` are accepted too.

use std::fmt;

/// A parsed rule over named variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Const(bool),
    /// A proposition (leaf or derived), by name.
    Var(String),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction of all parts.
    And(Vec<Expr>),
    /// Disjunction of all parts.
    Or(Vec<Expr>),
}

/// Why a rule's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based character offset of the problem.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset + 1, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Not,
    And,
    Or,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '!' | '~' => Token::Not,
            '&' => {
                if chars.get(i + 1) == Some(&'&') {
                    i += 1;
                }
                Token::And
            }
            '|' => {
                if chars.get(i + 1) == Some(&'|') {
                    i += 1;
                }
                Token::Or
            }
            '(' => Token::Open,
            ')' => Token::Close,
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let token = match word.as_str() {
                    "not" => Token::Not,
                    "and" => Token::And,
                    "or" => Token::Or,
                    _ => Token::Ident(word),
                };
                tokens.push((start, token));
                continue;
            }
            other => {
                return Err(ParseError {
                    offset: i,
                    message: format!("unexpected character {other:?}"),
                });
            }
        };
        tokens.push((i, token));
        i += 1;
    }
    Ok(tokens)
}

/// How deeply `(` and `!` may nest in one rule. Real rules nest a few levels; the bound keeps a
/// hostile policy from exhausting the stack of the parser and of every walk over the tree.
pub const MAX_NESTING: usize = 100;

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map(|(o, _)| *o)
            .unwrap_or(self.end)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::And(parts)
        })
    }

    /// One more level of `(` or `!`, or an error past [`MAX_NESTING`].
    fn nest(&mut self, offset: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError {
                offset,
                message: format!("the rule nests `(` and `!` more than {MAX_NESTING} deep"),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        match self.peek().cloned() {
            Some(Token::Not) => {
                self.pos += 1;
                self.nest(offset)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Some(Token::Open) => {
                self.pos += 1;
                self.nest(offset)?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Token::Close) {
                    return Err(ParseError {
                        offset: self.offset(),
                        message: "expected `)`".into(),
                    });
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Ident(name)) => {
                self.pos += 1;
                Ok(match name.as_str() {
                    "true" => Expr::Const(true),
                    "false" => Expr::Const(false),
                    _ => Expr::Var(name),
                })
            }
            Some(other) => Err(ParseError {
                offset,
                message: format!("expected a proposition name, `!` or `(`, found {other:?}"),
            }),
            None => Err(ParseError {
                offset,
                message: "expected a proposition name, the rule ends too early".into(),
            }),
        }
    }
}

impl Expr {
    /// Parse rule text.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            end: text.chars().count(),
            depth: 0,
        };
        let expr = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(ParseError {
                offset: parser.offset(),
                message: "unexpected text after the end of the rule (missing `&` or `|`?)".into(),
            });
        }
        Ok(expr)
    }

    /// Nodes of the tree after each variable is replaced by a tree of `size(name)` nodes and
    /// `depth(name)` levels: (nodes, levels), saturating. Lets a caller bound an inlining before
    /// building it (chained definitions can grow exponentially).
    pub fn substituted_extent(
        &self,
        extent: &impl Fn(&str) -> Option<(usize, usize)>,
    ) -> (usize, usize) {
        match self {
            Expr::Const(_) => (1, 1),
            Expr::Var(v) => extent(v).unwrap_or((1, 1)),
            Expr::Not(e) => {
                let (n, d) = e.substituted_extent(extent);
                (n.saturating_add(1), d.saturating_add(1))
            }
            Expr::And(es) | Expr::Or(es) => es.iter().fold((1, 1), |(n, d), e| {
                let (en, ed) = e.substituted_extent(extent);
                (n.saturating_add(en), d.max(ed.saturating_add(1)))
            }),
        }
    }

    /// Every variable name, in order of first appearance, without repeats.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Const(_) => {}
            Expr::Var(v) => {
                if !out.contains(&v.as_str()) {
                    out.push(v);
                }
            }
            Expr::Not(e) => e.collect_vars(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.collect_vars(out)),
        }
    }

    /// Replace each variable by what `f` returns for it.
    pub fn substitute(&self, f: &mut impl FnMut(&str) -> Expr) -> Expr {
        match self {
            Expr::Const(b) => Expr::Const(*b),
            Expr::Var(v) => f(v),
            Expr::Not(e) => Expr::Not(Box::new(e.substitute(f))),
            Expr::And(es) => Expr::And(es.iter().map(|e| e.substitute(f)).collect()),
            Expr::Or(es) => Expr::Or(es.iter().map(|e| e.substitute(f)).collect()),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join(f: &mut fmt::Formatter<'_>, es: &[Expr], op: &str) -> fmt::Result {
            for (i, e) in es.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                match e {
                    Expr::And(_) | Expr::Or(_) => write!(f, "({e})")?,
                    _ => write!(f, "{e}")?,
                }
            }
            Ok(())
        }
        match self {
            Expr::Const(b) => write!(f, "{b}"),
            Expr::Var(v) => f.write_str(v),
            Expr::Not(e) => match **e {
                Expr::And(_) | Expr::Or(_) => write!(f, "!({e})"),
                _ => write!(f, "!{e}"),
            },
            Expr::And(es) => join(f, es, "&"),
            Expr::Or(es) => join(f, es, "|"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(s: &str) -> Expr {
        Expr::Var(s.into())
    }

    #[test]
    fn precedence_not_and_or() {
        let e = Expr::parse("!a & b | c").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::And(vec![Expr::Not(Box::new(var("a"))), var("b")]),
                var("c")
            ])
        );
        assert_eq!(
            Expr::parse("not a and (b or c)").unwrap().to_string(),
            "!a & (b | c)"
        );
        assert_eq!(
            Expr::parse("a && b || true").unwrap().to_string(),
            "(a & b) | true"
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        for (text, offset) in [("a & ", 4), ("a b", 2), ("(a", 2), ("a $ b", 2), ("", 0)] {
            let err = Expr::parse(text).unwrap_err();
            assert_eq!(err.offset, offset, "{text:?}: {err}");
        }
    }

    #[test]
    fn nesting_is_bounded_with_a_clear_error() {
        let ok = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(Expr::parse(&ok).unwrap(), var("a"));
        let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let e = Expr::parse(&deep).unwrap_err();
        assert!(e.message.contains("more than 100 deep"), "{e}");
        assert_eq!(e.offset, MAX_NESTING);
        let nots = format!("{}a", "!".repeat(20_000));
        assert!(Expr::parse(&nots).unwrap_err().message.contains("deep"));
        // Siblings do not add up: depth is per path.
        let wide = vec!["(a)"; 5_000].join(" & ");
        assert!(Expr::parse(&wide).is_ok());
    }

    #[test]
    fn substituted_extent_counts_nodes_and_levels() {
        let e = Expr::parse("a & !(b | c)").unwrap();
        assert_eq!(e.substituted_extent(&|_| None), (6, 4));
        // b stands for a 10-node, 3-level tree.
        let x = e.substituted_extent(&|v| (v == "b").then_some((10, 3)));
        assert_eq!(x, (15, 6));
        assert_eq!(
            e.substituted_extent(&|_| Some((usize::MAX, 1))).0,
            usize::MAX
        );
    }

    #[test]
    fn variables_in_order_without_repeats() {
        let e = Expr::parse("b & !a & (b | c)").unwrap();
        assert_eq!(e.variables(), vec!["b", "a", "c"]);
    }
}
