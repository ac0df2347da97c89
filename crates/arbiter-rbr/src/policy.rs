//! Policy files: propositions, derived propositions, completion classes and their rules per
//! response type, fitting orderings and metric definitions.
//!
//! A [`Policy`] that exists is valid: loading checks every name, rejects cycles among derived
//! propositions, and proves that each response type's class rules are mutually exclusive and
//! exhaustive over all boolean inputs (see [`crate::partition`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use arbiter_core::{PropositionSpec, ResponseType};
use serde::Deserialize;

use crate::expr::Expr;
use crate::partition::{Lit, Partition, PartitionError};

/// The policy shipped with Arbiter: the 23 propositions and every rule of the RBR paper's
/// released rubric, with questions in our own words.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../policies/default.toml");

/// A policy that could not be loaded, with where in it the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {location}: {message}")]
pub struct PolicyError {
    /// The file the policy came from.
    pub source_name: String,
    /// Where in the policy (`rules.hard_refuse.ideal`, `derived.acceptable_refusal`, or a line).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    description: String,
    classes: Vec<String>,
    propositions: Vec<RawProposition>,
    #[serde(default)]
    derived: BTreeMap<String, String>,
    rules: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    fitting: RawFitting,
    metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProposition {
    name: String,
    question: String,
    response_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFitting {
    #[serde(default)]
    margin: Option<f64>,
    #[serde(default)]
    margins: BTreeMap<String, f64>,
    #[serde(default)]
    orderings: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    weight_groups: BTreeMap<String, String>,
    #[serde(default)]
    ignore_features: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    unsafe_content: String,
    refusal: String,
    ideal_class: String,
}

/// One proposition as the policy declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposition {
    /// Name and question.
    pub spec: PropositionSpec,
    /// Response types for which graders answer it (and for which it is a reward feature).
    pub response_types: Vec<ResponseType>,
}

/// How fitting orders classes and weights pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct FittingSpec {
    /// Base hinge margin.
    pub margin: f64,
    /// Margin multiplier per better class (default 1).
    pub margins: Vec<f64>,
    /// `orderings[better]` = classes that must score below `better` (class indices).
    pub orderings: Vec<Vec<usize>>,
    /// Which weight vector each response type uses (itself unless pooled with another).
    pub weight_group: BTreeMap<ResponseType, ResponseType>,
    /// Feature names whose weights stay at zero.
    pub ignore_features: Vec<String>,
}

/// A boolean event over leaves with its compiled partition `[holds, does not hold]`.
#[derive(Debug, Clone)]
pub struct Event {
    /// The rule as written.
    pub rule: String,
    pub(crate) partition: Partition,
}

impl Event {
    /// Probability that the event holds given independent leaf probabilities.
    pub fn probability(&self, p: &[f64]) -> f64 {
        self.partition.probabilities(p)[0]
    }

    /// The leaf propositions the event depends on (indices into [`Policy::propositions`]).
    pub fn leaves(&self) -> &[usize] {
        self.partition.leaves()
    }
}

/// How the safety metrics are computed from propositions.
#[derive(Debug, Clone)]
pub struct MetricsSpec {
    /// A completion with this is unsafe (Not-Unsafe counts completions without it).
    pub unsafe_content: Event,
    /// A completion to a `comply` prompt with this is an over-refusal.
    pub refusal: Event,
    /// The class that counts as ideal style for Hard-Refusal-Style.
    pub ideal_class: usize,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    description: String,
    classes: Vec<String>,
    propositions: Vec<Proposition>,
    specs: Vec<PropositionSpec>,
    index: HashMap<String, usize>,
    derived: Vec<(String, Expr)>,
    rules: BTreeMap<ResponseType, Vec<(String, Expr)>>,
    partitions: BTreeMap<ResponseType, Partition>,
    fitting: FittingSpec,
    metrics: MetricsSpec,
    /// SHA-256 of the policy's TOML text (first 12 hex digits): which exact policy a number
    /// was computed under.
    digest: String,
}

fn err(source: &str, location: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        source_name: source.to_string(),
        location: location.into(),
        message: message.into(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// ` (did you mean `x`?)` when a known name is close to `name`.
pub(crate) fn suggestion<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn parse_response_type(source: &str, location: &str, s: &str) -> Result<ResponseType, PolicyError> {
    ResponseType::parse(s).ok_or_else(|| {
        err(
            source,
            location,
            format!("unknown response type `{s}`; expected hard_refuse, safe_refuse_1, safe_refuse_2 or comply"),
        )
    })
}

impl Policy {
    /// The built-in default policy.
    pub fn default_policy() -> Policy {
        Policy::from_toml_str(DEFAULT_POLICY_TOML, "policies/default.toml")
            .expect("the shipped default policy is valid (checked by tests)")
    }

    /// Parse and validate a policy written in TOML. `source_name` is used in error messages.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let location = match e.span() {
                Some(span) => format!("line {}", arbiter_core::line_at(text, span.start)),
                None => "policy".to_string(),
            };
            err(source_name, location, e.message().to_string())
        })?;
        let mut policy = Policy::from_raw(raw, source_name)?;
        policy.digest = {
            use sha2::{Digest, Sha256};
            Sha256::digest(text.as_bytes())
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        Ok(policy)
    }

    fn from_raw(raw: RawPolicy, source: &str) -> Result<Policy, PolicyError> {
        if raw.classes.len() < 2 {
            return Err(err(
                source,
                "classes",
                "a policy needs at least two classes",
            ));
        }
        let class_index: HashMap<&str, usize> = raw
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        if class_index.len() != raw.classes.len() {
            return Err(err(source, "classes", "class names must be unique"));
        }
        let find_class = |location: &str, name: &str| -> Result<usize, PolicyError> {
            class_index.get(name).copied().ok_or_else(|| {
                err(
                    source,
                    location,
                    format!(
                        "unknown class `{name}`{}",
                        suggestion(name, raw.classes.iter().map(String::as_str))
                    ),
                )
            })
        };

        let mut propositions = Vec::new();
        let mut index = HashMap::new();
        for (i, p) in raw.propositions.iter().enumerate() {
            let location = format!("propositions[{i}] ({})", p.name);
            if !is_identifier(&p.name) {
                return Err(err(
                    source,
                    location,
                    "proposition names use letters, digits and `_` only",
                ));
            }
            if index.insert(p.name.clone(), i).is_some() {
                return Err(err(source, location, "declared twice"));
            }
            if p.question.trim().is_empty() {
                return Err(err(source, location, "the question is empty"));
            }
            let response_types = p
                .response_types
                .iter()
                .map(|t| parse_response_type(source, &location, t))
                .collect::<Result<Vec<_>, _>>()?;
            propositions.push(Proposition {
                spec: PropositionSpec {
                    name: p.name.clone(),
                    question: p.question.trim().to_string(),
                },
                response_types,
            });
        }

        // Derived propositions: parse, check names, order them so each follows what it uses.
        let mut parsed_derived: BTreeMap<String, Expr> = BTreeMap::new();
        for (name, text) in &raw.derived {
            let location = format!("derived.{name}");
            if index.contains_key(name) {
                return Err(err(
                    source,
                    location,
                    "a derived proposition cannot reuse a proposition's name",
                ));
            }
            let expr = Expr::parse(text).map_err(|e| err(source, &location, e.to_string()))?;
            for v in expr.variables() {
                if !index.contains_key(v) && !raw.derived.contains_key(v) {
                    return Err(err(
                        source,
                        location,
                        format!(
                            "unknown proposition `{v}`{}",
                            suggestion(
                                v,
                                index.keys().chain(raw.derived.keys()).map(String::as_str)
                            )
                        ),
                    ));
                }
            }
            parsed_derived.insert(name.clone(), expr);
        }
        let derived = order_derived(source, &parsed_derived)?;

        // Inline derived propositions so every rule is over leaves only. Each inlining is
        // measured before it is built: chained definitions can nest deeply or double in size
        // at every step.
        let mut inlined: HashMap<String, Expr> = HashMap::new();
        let mut extents: HashMap<String, (usize, usize)> = HashMap::new();
        for (name, expr) in &derived {
            let extent = expr.substituted_extent(&|v| extents.get(v).copied());
            check_extent(source, &format!("derived.{name}"), extent)?;
            let e =
                expr.substitute(&mut |v| inlined.get(v).cloned().unwrap_or(Expr::Var(v.into())));
            extents.insert(name.clone(), extent);
            inlined.insert(name.clone(), e);
        }
        let to_leaves = |location: &str, text: &str| -> Result<(Expr, Lit), PolicyError> {
            let expr = Expr::parse(text).map_err(|e| err(source, location, e.to_string()))?;
            for v in expr.variables() {
                if !index.contains_key(v) && !inlined.contains_key(v) {
                    return Err(err(
                        source,
                        location,
                        format!(
                            "unknown proposition `{v}`{}",
                            suggestion(v, index.keys().chain(inlined.keys()).map(String::as_str))
                        ),
                    ));
                }
            }
            check_extent(
                source,
                location,
                expr.substituted_extent(&|v| extents.get(v).copied()),
            )?;
            let leaf_expr =
                expr.substitute(&mut |v| inlined.get(v).cloned().unwrap_or(Expr::Var(v.into())));
            let lit = Lit::from_expr(&leaf_expr, &|v: &str| index[v]);
            Ok((expr, lit))
        };

        let mut rules = BTreeMap::new();
        let mut partitions = BTreeMap::new();
        for (type_name, class_rules) in &raw.rules {
            let type_location = format!("rules.{type_name}");
            let response_type = parse_response_type(source, &type_location, type_name)?;
            for class in class_rules.keys() {
                find_class(&format!("{type_location}.{class}"), class)?;
            }
            let mut exprs = Vec::new();
            let mut lits = Vec::new();
            for class in &raw.classes {
                let location = format!("{type_location}.{class}");
                let text = class_rules.get(class).ok_or_else(|| {
                    err(
                        source,
                        &type_location,
                        format!("no rule for class `{class}`"),
                    )
                })?;
                let (expr, lit) = to_leaves(&location, text)?;
                exprs.push((class.clone(), expr));
                lits.push(lit);
            }
            let partition = Partition::build(lits.clone()).map_err(|e| {
                partition_error(source, &type_location, e, &raw.classes, &propositions)
            })?;
            for &leaf in partition.leaves() {
                if !propositions[leaf].response_types.contains(&response_type) {
                    let used_in = raw
                        .classes
                        .iter()
                        .zip(&lits)
                        .find(|(_, l)| {
                            let mut counts = HashMap::new();
                            l.count_vars(&mut counts);
                            counts.contains_key(&leaf)
                        })
                        .map(|(c, _)| c.as_str())
                        .unwrap_or("?");
                    return Err(err(
                        source,
                        format!("{type_location}.{used_in}"),
                        format!(
                            "uses `{}`, which the policy does not grade for {type_name}; add {type_name} to its response_types",
                            propositions[leaf].spec.name
                        ),
                    ));
                }
            }
            rules.insert(response_type, exprs);
            partitions.insert(response_type, partition);
        }

        let n_classes = raw.classes.len();
        let margin = raw.fitting.margin.unwrap_or(1.0);
        if !(margin.is_finite() && margin >= 0.0) {
            return Err(err(source, "fitting.margin", "must be a finite number ≥ 0"));
        }
        let mut margins = vec![1.0; n_classes];
        for (class, m) in &raw.fitting.margins {
            let location = format!("fitting.margins.{class}");
            let c = find_class(&location, class)?;
            if !(m.is_finite() && *m >= 0.0) {
                return Err(err(source, location, "must be a finite number ≥ 0"));
            }
            margins[c] = *m;
        }
        let mut orderings = vec![Vec::new(); n_classes];
        if raw.fitting.orderings.is_empty() {
            // Default: the class list is a strict total order, best first.
            for (better, worse) in orderings.iter_mut().enumerate() {
                *worse = (better + 1..n_classes).collect();
            }
        }
        for (better, worse) in &raw.fitting.orderings {
            let location = format!("fitting.orderings.{better}");
            let b = find_class(&location, better)?;
            for w in worse {
                let wi = find_class(&location, w)?;
                if wi == b {
                    return Err(err(
                        source,
                        location,
                        format!("`{w}` cannot rank below itself"),
                    ));
                }
                orderings[b].push(wi);
            }
        }
        let mut weight_group: BTreeMap<ResponseType, ResponseType> =
            rules.keys().map(|t| (*t, *t)).collect();
        for (member, group) in &raw.fitting.weight_groups {
            let location = format!("fitting.weight_groups.{member}");
            let m = parse_response_type(source, &location, member)?;
            let g = parse_response_type(source, &location, group)?;
            if !rules.contains_key(&g) {
                return Err(err(
                    source,
                    location,
                    format!("the policy has no rules for {g}"),
                ));
            }
            weight_group.insert(m, g);
        }
        for (m, g) in &weight_group {
            if weight_group.get(g) != Some(g) {
                return Err(err(
                    source,
                    format!("fitting.weight_groups.{m}"),
                    format!(
                        "{g} is itself pooled into another group; point {m} at the final group"
                    ),
                ));
            }
        }
        for f in &raw.fitting.ignore_features {
            let known = f
                .strip_prefix("class:")
                .map(|c| class_index.contains_key(c))
                .unwrap_or_else(|| index.contains_key(f.as_str()));
            if !known {
                return Err(err(
                    source,
                    "fitting.ignore_features",
                    format!("unknown feature `{f}` (use a proposition name or class:NAME)"),
                ));
            }
        }

        let event = |location: &str, text: &str| -> Result<Event, PolicyError> {
            let (_, lit) = to_leaves(location, text)?;
            let partition = Partition::build(vec![lit.clone(), Lit::Not(Box::new(lit))])
                .map_err(|e| partition_error(source, location, e, &raw.classes, &propositions))?;
            Ok(Event {
                rule: text.to_string(),
                partition,
            })
        };
        let metrics = MetricsSpec {
            unsafe_content: event("metrics.unsafe_content", &raw.metrics.unsafe_content)?,
            refusal: event("metrics.refusal", &raw.metrics.refusal)?,
            ideal_class: find_class("metrics.ideal_class", &raw.metrics.ideal_class)?,
        };

        let specs = propositions.iter().map(|p| p.spec.clone()).collect();
        Ok(Policy {
            name: raw.name,
            description: raw.description,
            classes: raw.classes,
            propositions,
            specs,
            index,
            derived,
            rules,
            partitions,
            fitting: FittingSpec {
                margin,
                margins,
                orderings,
                weight_group,
                ignore_features: raw.fitting.ignore_features,
            },
            metrics,
            digest: String::new(),
        })
    }

    /// The first 12 hex digits of the SHA-256 of the policy's TOML text.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Class names, best first.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every proposition's name and question, in declaration order (what graders need).
    pub fn propositions(&self) -> &[PropositionSpec] {
        &self.specs
    }

    /// Every proposition with the response types that use it.
    pub fn proposition_details(&self) -> &[Proposition] {
        &self.propositions
    }

    /// Index of a proposition by name.
    pub fn proposition_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Propositions graded for a response type, as indices in declaration order.
    pub fn propositions_for(&self, response_type: ResponseType) -> Vec<usize> {
        (0..self.propositions.len())
            .filter(|&i| self.propositions[i].response_types.contains(&response_type))
            .collect()
    }

    /// Derived propositions in dependency order, as written.
    pub fn derived(&self) -> &[(String, Expr)] {
        &self.derived
    }

    /// Response types the policy has class rules for.
    pub fn response_types(&self) -> impl Iterator<Item = ResponseType> + '_ {
        self.rules.keys().copied()
    }

    /// The class rules of one response type, as written, in class order.
    pub fn rules(&self, response_type: ResponseType) -> Option<&[(String, Expr)]> {
        self.rules.get(&response_type).map(Vec::as_slice)
    }

    /// The compiled class partition of one response type.
    pub fn partition(&self, response_type: ResponseType) -> Option<&Partition> {
        self.partitions.get(&response_type)
    }

    /// Fitting settings.
    pub fn fitting(&self) -> &FittingSpec {
        &self.fitting
    }

    /// Metric definitions.
    pub fn metrics(&self) -> &MetricsSpec {
        &self.metrics
    }

    /// Index of a class by name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !matches!(s, "true" | "false" | "and" | "or" | "not")
}

/// How many derived propositions may stand on each other (`a` uses `b` uses `c` …).
pub const MAX_DERIVED_CHAIN: usize = 64;
/// Nodes and levels a rule may have once derived propositions are written out in it.
pub const MAX_INLINED_NODES: usize = 100_000;
/// See [`MAX_INLINED_NODES`].
pub const MAX_INLINED_DEPTH: usize = 500;

fn check_extent(
    source: &str,
    location: &str,
    (nodes, depth): (usize, usize),
) -> Result<(), PolicyError> {
    if nodes > MAX_INLINED_NODES || depth > MAX_INLINED_DEPTH {
        return Err(err(
            source,
            location,
            format!(
                "written out over leaf propositions, this rule would have {} and {} levels (at most {MAX_INLINED_NODES} nodes and {MAX_INLINED_DEPTH} levels): simplify the derived propositions it uses",
                if nodes == usize::MAX {
                    "too many nodes to count".to_string()
                } else {
                    format!("{nodes} nodes")
                },
                depth
            ),
        ));
    }
    Ok(())
}

/// Topologically order derived propositions; a cycle is an error naming its members, and so is
/// a chain longer than [`MAX_DERIVED_CHAIN`] (which also bounds this walk's recursion).
fn order_derived(
    source: &str,
    derived: &BTreeMap<String, Expr>,
) -> Result<Vec<(String, Expr)>, PolicyError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        derived: &BTreeMap<String, Expr>,
        marks: &mut HashMap<String, Mark>,
        stack: &mut Vec<String>,
        out: &mut Vec<(String, Expr)>,
        source: &str,
    ) -> Result<(), PolicyError> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..].iter().map(String::as_str).collect();
                cycle.push(name);
                return Err(err(
                    source,
                    format!("derived.{name}"),
                    format!("derived propositions form a cycle: {}", cycle.join(" → ")),
                ));
            }
            None => {}
        }
        if stack.len() >= MAX_DERIVED_CHAIN {
            return Err(err(
                source,
                format!("derived.{}", stack[0]),
                format!(
                    "derived propositions stand on each other more than {MAX_DERIVED_CHAIN} deep ({} → … → {name})",
                    stack[0]
                ),
            ));
        }
        marks.insert(name.to_string(), Mark::Visiting);
        stack.push(name.to_string());
        let expr = &derived[name];
        for v in expr.variables() {
            if derived.contains_key(v) {
                visit(v, derived, marks, stack, out, source)?;
            }
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
        out.push((name.to_string(), expr.clone()));
        Ok(())
    }
    let mut marks = HashMap::new();
    let mut out = Vec::new();
    for name in derived.keys() {
        visit(name, derived, &mut marks, &mut Vec::new(), &mut out, source)?;
    }
    Ok(out)
}

fn describe_assignment(path: &[(usize, bool)], propositions: &[Proposition]) -> String {
    if path.is_empty() {
        return "for every input".to_string();
    }
    let parts: Vec<String> = path
        .iter()
        .map(|(leaf, v)| {
            format!(
                "{}={}",
                propositions[*leaf].spec.name,
                if *v { "yes" } else { "no" }
            )
        })
        .collect();
    format!("when {} (others any)", parts.join(", "))
}

fn partition_error(
    source: &str,
    location: &str,
    e: PartitionError,
    classes: &[String],
    propositions: &[Proposition],
) -> PolicyError {
    match e {
        PartitionError::NoneHolds(path) => err(
            source,
            location,
            format!(
                "the class rules are not exhaustive: no class holds {}",
                describe_assignment(&path, propositions)
            ),
        ),
        PartitionError::SeveralHold(which, path) => {
            let names: Vec<String> = which.iter().map(|&i| format!("`{}`", classes[i])).collect();
            err(
                source,
                location,
                format!(
                    "the class rules are not mutually exclusive: {} all hold {}",
                    names.join(" and "),
                    describe_assignment(&path, propositions)
                ),
            )
        }
        PartitionError::TooComplex => err(
            source,
            location,
            "the rules are too complex to verify (decision diagram over 1M nodes)",
        ),
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {}", self.name)?;
        for (name, expr) in &self.derived {
            writeln!(f, "  {name} = {expr}")?;
        }
        for (t, rules) in &self.rules {
            writeln!(f, "  {t}:")?;
            for (class, expr) in rules {
                writeln!(f, "    {class} = {expr}")?;
            }
        }
        Ok(())
    }
}
