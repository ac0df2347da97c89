//! Compiling a set of rules that should partition the boolean space into a decision diagram.
//!
//! Given outcome rules over leaf propositions (e.g. the five completion classes of one response
//! type), Shannon expansion builds a reduced decision diagram. Building it proves the rules are
//! mutually exclusive and exhaustive (every terminal has exactly one true rule) or yields the
//! assignment where they are not. Evaluating it gives:
//!
//! - for boolean inputs, the single outcome that holds;
//! - for independent Bernoulli inputs, the exact probability of every outcome, summing to 1 by
//!   construction, at a cost linear in the diagram's size rather than 2^k.

use std::collections::HashMap;

use crate::expr::Expr;

/// An expression whose variables are leaf indices, kept simplified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lit {
    Const(bool),
    Var(usize),
    Not(Box<Lit>),
    And(Vec<Lit>),
    Or(Vec<Lit>),
}

impl Lit {
    /// Convert an expression whose variables all name leaves (derived ones already inlined).
    pub(crate) fn from_expr(e: &Expr, leaf_index: &impl Fn(&str) -> usize) -> Lit {
        match e {
            Expr::Const(b) => Lit::Const(*b),
            Expr::Var(v) => Lit::Var(leaf_index(v)),
            Expr::Not(inner) => Lit::Not(Box::new(Lit::from_expr(inner, leaf_index))),
            Expr::And(es) => Lit::And(es.iter().map(|e| Lit::from_expr(e, leaf_index)).collect()),
            Expr::Or(es) => Lit::Or(es.iter().map(|e| Lit::from_expr(e, leaf_index)).collect()),
        }
        .simplified()
    }

    fn simplified(self) -> Lit {
        match self {
            Lit::Not(inner) => match inner.simplified() {
                Lit::Const(b) => Lit::Const(!b),
                Lit::Not(x) => *x,
                other => Lit::Not(Box::new(other)),
            },
            Lit::And(parts) => {
                let mut kept = Vec::with_capacity(parts.len());
                for p in parts {
                    match p.simplified() {
                        Lit::Const(true) => {}
                        Lit::Const(false) => return Lit::Const(false),
                        Lit::And(inner) => kept.extend(inner),
                        other => kept.push(other),
                    }
                }
                match kept.len() {
                    0 => Lit::Const(true),
                    1 => kept.pop().expect("one part"),
                    _ => Lit::And(kept),
                }
            }
            Lit::Or(parts) => {
                let mut kept = Vec::with_capacity(parts.len());
                for p in parts {
                    match p.simplified() {
                        Lit::Const(false) => {}
                        Lit::Const(true) => return Lit::Const(true),
                        Lit::Or(inner) => kept.extend(inner),
                        other => kept.push(other),
                    }
                }
                match kept.len() {
                    0 => Lit::Const(false),
                    1 => kept.pop().expect("one part"),
                    _ => Lit::Or(kept),
                }
            }
            other => other,
        }
    }

    fn restrict(&self, var: usize, value: bool) -> Lit {
        match self {
            Lit::Const(b) => Lit::Const(*b),
            Lit::Var(v) if *v == var => Lit::Const(value),
            Lit::Var(v) => Lit::Var(*v),
            Lit::Not(e) => Lit::Not(Box::new(e.restrict(var, value))),
            Lit::And(es) => Lit::And(es.iter().map(|e| e.restrict(var, value)).collect()),
            Lit::Or(es) => Lit::Or(es.iter().map(|e| e.restrict(var, value)).collect()),
        }
        .simplified()
    }

    pub(crate) fn count_vars(&self, counts: &mut HashMap<usize, usize>) {
        match self {
            Lit::Const(_) => {}
            Lit::Var(v) => *counts.entry(*v).or_default() += 1,
            Lit::Not(e) => e.count_vars(counts),
            Lit::And(es) | Lit::Or(es) => es.iter().for_each(|e| e.count_vars(counts)),
        }
    }

    fn as_const(&self) -> Option<bool> {
        match self {
            Lit::Const(b) => Some(*b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Branch {
        var: usize,
        if_false: usize,
        if_true: usize,
    },
    Outcome(usize),
}

/// Why a set of rules does not partition the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionError {
    /// No rule holds for this assignment (leaf index, value); unlisted leaves are free.
    NoneHolds(Vec<(usize, bool)>),
    /// Several rules (outcome indices) hold for this assignment.
    SeveralHold(Vec<usize>, Vec<(usize, bool)>),
    /// The diagram would exceed the node budget.
    TooComplex,
}

/// Upper bound on diagram nodes; real policies need a few hundred.
const MAX_NODES: usize = 1 << 20;

/// A proven partition of the boolean space over some leaves into outcomes.
#[derive(Debug, Clone)]
pub struct Partition {
    nodes: Vec<Node>,
    root: usize,
    n_outcomes: usize,
    leaves: Vec<usize>,
}

impl Partition {
    /// Build the diagram for outcome rules, proving exclusivity and exhaustiveness.
    pub(crate) fn build(outcomes: Vec<Lit>) -> Result<Partition, PartitionError> {
        let n_outcomes = outcomes.len();
        let mut builder = Builder {
            nodes: Vec::new(),
            memo: HashMap::new(),
            path: Vec::new(),
            outcome_nodes: HashMap::new(),
        };
        let root = builder.build(outcomes)?;
        let mut leaves: Vec<usize> = builder
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Branch { var, .. } => Some(*var),
                Node::Outcome(_) => None,
            })
            .collect();
        leaves.sort_unstable();
        leaves.dedup();
        Ok(Partition {
            nodes: builder.nodes,
            root,
            n_outcomes,
            leaves,
        })
    }

    /// Leaf indices the outcome depends on, ascending.
    pub fn leaves(&self) -> &[usize] {
        &self.leaves
    }

    /// Number of nodes in the diagram.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The single outcome for boolean leaf values (`values[leaf]`).
    pub fn decide(&self, values: &[bool]) -> usize {
        let mut at = self.root;
        loop {
            match self.nodes[at] {
                Node::Outcome(o) => return o,
                Node::Branch {
                    var,
                    if_false,
                    if_true,
                } => at = if values[var] { if_true } else { if_false },
            }
        }
    }

    /// Exact outcome probabilities when leaf `i` is true with probability `p[i]` independently.
    pub fn probabilities(&self, p: &[f64]) -> Vec<f64> {
        let mut mass = vec![0.0; self.nodes.len()];
        let mut out = vec![0.0; self.n_outcomes];
        mass[self.root] = 1.0;
        // Children are always created before their parents, so a reverse sweep visits every
        // node after all of its parents.
        for at in (0..=self.root).rev() {
            let m = mass[at];
            if m == 0.0 {
                continue;
            }
            match self.nodes[at] {
                Node::Outcome(o) => out[o] += m,
                Node::Branch {
                    var,
                    if_false,
                    if_true,
                } => {
                    let q = p[var];
                    mass[if_true] += m * q;
                    mass[if_false] += m * (1.0 - q);
                }
            }
        }
        out
    }
}

struct Builder {
    nodes: Vec<Node>,
    memo: HashMap<Vec<Lit>, usize>,
    path: Vec<(usize, bool)>,
    outcome_nodes: HashMap<usize, usize>,
}

impl Builder {
    fn build(&mut self, exprs: Vec<Lit>) -> Result<usize, PartitionError> {
        if let Some(&id) = self.memo.get(&exprs) {
            return Ok(id);
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(PartitionError::TooComplex);
        }
        let mut counts = HashMap::new();
        for e in &exprs {
            e.count_vars(&mut counts);
        }
        let id = if counts.is_empty() {
            let holding: Vec<usize> = exprs
                .iter()
                .enumerate()
                .filter(|(_, e)| e.as_const() == Some(true))
                .map(|(i, _)| i)
                .collect();
            match holding.as_slice() {
                [one] => *self.outcome_nodes.entry(*one).or_insert_with(|| {
                    self.nodes.push(Node::Outcome(*one));
                    self.nodes.len() - 1
                }),
                [] => return Err(PartitionError::NoneHolds(self.path.clone())),
                _ => return Err(PartitionError::SeveralHold(holding, self.path.clone())),
            }
        } else {
            // Split on the most used leaf first: it settles the most rules at once.
            let var = counts
                .iter()
                .max_by_key(|(v, c)| (**c, std::cmp::Reverse(**v)))
                .map(|(v, _)| *v)
                .expect("non-empty counts");
            let lo: Vec<Lit> = exprs.iter().map(|e| e.restrict(var, false)).collect();
            let hi: Vec<Lit> = exprs.iter().map(|e| e.restrict(var, true)).collect();
            self.path.push((var, false));
            let if_false = self.build(lo)?;
            self.path.pop();
            self.path.push((var, true));
            let if_true = self.build(hi)?;
            self.path.pop();
            if if_false == if_true {
                if_false
            } else {
                self.nodes.push(Node::Branch {
                    var,
                    if_false,
                    if_true,
                });
                self.nodes.len() - 1
            }
        };
        self.memo.insert(exprs, id);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str) -> Lit {
        let e = Expr::parse(text).unwrap();
        Lit::from_expr(&e, &|v: &str| (v.as_bytes()[0] - b'a') as usize)
    }

    #[test]
    fn partition_decides_and_sums_to_one() {
        let p = Partition::build(vec![lit("a & b"), lit("a & !b"), lit("!a")]).unwrap();
        assert_eq!(p.decide(&[true, true]), 0);
        assert_eq!(p.decide(&[true, false]), 1);
        assert_eq!(p.decide(&[false, true]), 2);
        let probs = p.probabilities(&[0.3, 0.6]);
        let expected = [0.18, 0.12, 0.7];
        for (got, want) in probs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn overlapping_and_gapped_rules_are_reported_with_an_assignment() {
        match Partition::build(vec![lit("a"), lit("a & b"), lit("!a")]) {
            Err(PartitionError::SeveralHold(which, path)) => {
                assert_eq!(which, vec![0, 1]);
                assert!(path.contains(&(0, true)) && path.contains(&(1, true)));
            }
            other => panic!("expected overlap, got {other:?}"),
        }
        match Partition::build(vec![lit("a & b"), lit("!a")]) {
            Err(PartitionError::NoneHolds(path)) => {
                assert!(path.contains(&(0, true)) && path.contains(&(1, false)));
            }
            other => panic!("expected gap, got {other:?}"),
        }
    }

    #[test]
    fn shared_leaves_are_handled_exactly() {
        // `a` appears directly and inside another rule: naive products would double count it.
        let p = Partition::build(vec![lit("a"), lit("!a & b & c"), lit("!a & !(b & c)")]).unwrap();
        let probs = p.probabilities(&[0.5, 0.5, 0.5]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((probs[1] - 0.125).abs() < 1e-12);
    }
}
