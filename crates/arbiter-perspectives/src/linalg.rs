//! Principal components of the item features by randomised subspace iteration.
//!
//! The text features are about 1,400 wide; every model works on their leading principal
//! components instead, which makes per-annotator parameters hundreds of values rather than
//! thousands and training seconds rather than minutes. The work is split into two fixed
//! halves on two threads and summed in order, so results do not depend on the machine.

use arbiter_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

/// A fitted projection: `z = components · (x − mean)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Input width.
    pub dim: usize,
    /// Feature means of the fitting rows.
    pub mean: Vec<f64>,
    /// `k × dim`, row-major, orthonormal rows in order of explained variance.
    pub components: Vec<f64>,
    /// Variance along each component (over the fitting rows).
    pub variances: Vec<f64>,
}

impl Pca {
    /// Number of components.
    pub fn k(&self) -> usize {
        self.variances.len()
    }

    /// Keep only the leading `k` components (all when there are fewer): the projection of a
    /// narrower fit, read from a wider one.
    pub fn truncate(&mut self, k: usize) {
        let k = k.min(self.k());
        self.components.truncate(k * self.dim);
        self.variances.truncate(k);
    }

    /// Project one row.
    pub fn project(&self, x: &[f32]) -> Vec<f64> {
        let centred: Vec<f64> = x
            .iter()
            .zip(&self.mean)
            .map(|(&v, m)| v as f64 - m)
            .collect();
        self.components
            .chunks_exact(self.dim)
            .map(|c| dot(c, &centred))
            .collect()
    }

    /// Fit on the rows `rows` of the row-major matrix `x` (`dim` wide): up to `k` components
    /// (fewer when the rows span fewer), by subspace iteration with 16 extra directions and two
    /// power steps from a seeded Gaussian start.
    pub fn fit(x: &[f32], dim: usize, rows: &[u32], k: usize, seed: u64) -> Pca {
        let n = rows.len();
        let mut mean = vec![0.0; dim];
        for &r in rows {
            for (m, &v) in mean
                .iter_mut()
                .zip(&x[r as usize * dim..(r as usize + 1) * dim])
            {
                *m += v as f64;
            }
        }
        for m in &mut mean {
            *m /= n.max(1) as f64;
        }
        let a: Vec<f64> = rows
            .iter()
            .flat_map(|&r| {
                x[r as usize * dim..(r as usize + 1) * dim]
                    .iter()
                    .zip(&mean)
                    .map(|(&v, m)| v as f64 - m)
            })
            .collect();
        let l = (k + 16).min(n).min(dim);
        if l == 0 {
            return Pca {
                dim,
                mean,
                components: Vec::new(),
                variances: Vec::new(),
            };
        }
        let mut rng = SeededRng::new(seed);
        let omega: Vec<f64> = (0..dim * l).map(|_| gaussian(&mut rng)).collect();
        let mut q = times(&a, n, dim, &omega, l);
        orthonormalise(&mut q, n, l);
        for _ in 0..2 {
            let mut z = transposed_times(&a, n, dim, &q, l);
            orthonormalise(&mut z, dim, l);
            q = times(&a, n, dim, &z, l);
            orthonormalise(&mut q, n, l);
        }
        // Bᵀ = Aᵀ Q (dim × l); B Bᵀ = (Aᵀ Q)ᵀ (Aᵀ Q) is l × l.
        let bt = transposed_times(&a, n, dim, &q, l);
        let mut gram = vec![0.0; l * l];
        for row in bt.chunks_exact(l) {
            for i in 0..l {
                let ri = row[i];
                if ri == 0.0 {
                    continue;
                }
                for j in i..l {
                    gram[i * l + j] += ri * row[j];
                }
            }
        }
        for i in 0..l {
            for j in 0..i {
                gram[i * l + j] = gram[j * l + i];
            }
        }
        let (values, vectors) = jacobi_eigen(gram, l);
        let mut order: Vec<usize> = (0..l).collect();
        order.sort_by(|&i, &j| values[j].total_cmp(&values[i]));
        let scale = values.iter().cloned().fold(0.0, f64::max).max(1e-300);
        let mut components = Vec::new();
        let mut variances = Vec::new();
        for &j in order.iter().take(k) {
            let lambda = values[j];
            if lambda <= scale * 1e-10 {
                break;
            }
            // v = Bᵀ w / √λ: a unit right singular vector of A.
            let s = 1.0 / lambda.sqrt();
            components.extend(
                bt.chunks_exact(l)
                    .map(|row| s * (0..l).map(|i| row[i] * vectors[i * l + j]).sum::<f64>()),
            );
            variances.push(lambda / (n.max(2) - 1) as f64);
        }
        Pca {
            dim,
            mean,
            components,
            variances,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A standard normal draw (Box–Muller).
pub(crate) fn gaussian(rng: &mut SeededRng) -> f64 {
    let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `A (n × d) · M (d × l)`, row-major, the rows in two halves on two threads.
fn times(a: &[f64], n: usize, d: usize, m: &[f64], l: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * l];
    let half = n.div_ceil(2);
    let (top, bottom) = out.split_at_mut(half * l);
    let work = |rows: std::ops::Range<usize>, out: &mut [f64]| {
        for (i, o) in rows.zip(out.chunks_exact_mut(l)) {
            for (j, &v) in a[i * d..(i + 1) * d].iter().enumerate() {
                if v != 0.0 {
                    for (o, w) in o.iter_mut().zip(&m[j * l..(j + 1) * l]) {
                        *o += v * w;
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| work(half..n, bottom));
        work(0..half, top);
    });
    out
}

/// `Aᵀ (d × n) · M (n × l)`: each half of A's rows summed on its own thread, then added in
/// order.
fn transposed_times(a: &[f64], n: usize, d: usize, m: &[f64], l: usize) -> Vec<f64> {
    let half = n.div_ceil(2);
    let work = |rows: std::ops::Range<usize>| {
        let mut out = vec![0.0; d * l];
        for i in rows {
            let mi = &m[i * l..(i + 1) * l];
            for (j, &v) in a[i * d..(i + 1) * d].iter().enumerate() {
                if v != 0.0 {
                    for (o, w) in out[j * l..(j + 1) * l].iter_mut().zip(mi) {
                        *o += v * w;
                    }
                }
            }
        }
        out
    };
    let (mut first, second) = std::thread::scope(|s| {
        let other = s.spawn(|| work(half..n));
        let first = work(0..half);
        (
            first,
            other
                .join()
                .expect("a worker of a pure computation panicked"),
        )
    });
    for (f, s) in first.iter_mut().zip(second) {
        *f += s;
    }
    first
}

/// Orthonormalise the `l` columns of a row-major `n × l` matrix in place (modified
/// Gram–Schmidt, twice). A column that vanishes is left zero.
fn orthonormalise(m: &mut [f64], n: usize, l: usize) {
    for _ in 0..2 {
        for j in 0..l {
            for p in 0..j {
                let r: f64 = (0..n).map(|i| m[i * l + p] * m[i * l + j]).sum();
                for i in 0..n {
                    m[i * l + j] -= r * m[i * l + p];
                }
            }
            let norm = (0..n)
                .map(|i| m[i * l + j] * m[i * l + j])
                .sum::<f64>()
                .sqrt();
            let s = if norm > 1e-300 { 1.0 / norm } else { 0.0 };
            for i in 0..n {
                m[i * l + j] *= s;
            }
        }
    }
}

/// Eigenvalues and eigenvectors (columns of the row-major result) of a symmetric matrix by
/// cyclic Jacobi rotations.
pub(crate) fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= total * 1e-28 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, _) = jacobi_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12 && (values[1] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn recovers_a_planted_low_rank_structure() {
        // Rows = a·u + b·v + tiny noise with var(a) = 9, var(b) = 1: two components along u
        // and v with those variances, everything else negligible.
        let dim = 40;
        let mut rng = SeededRng::new(3);
        let mut u = vec![0.0f64; dim];
        let mut v = vec![0.0f64; dim];
        u[0] = 0.6;
        u[1] = 0.8;
        v[2] = 1.0;
        let n = 500;
        let mut x = Vec::new();
        for _ in 0..n {
            let (a, b) = (3.0 * gaussian(&mut rng), gaussian(&mut rng));
            for j in 0..dim {
                x.push((a * u[j] + b * v[j] + 1e-4 * gaussian(&mut rng)) as f32);
            }
        }
        let rows: Vec<u32> = (0..n as u32).collect();
        let pca = Pca::fit(&x, dim, &rows, 5, 1);
        assert!(
            (pca.variances[0] / 9.0 - 1.0).abs() < 0.2,
            "{:?}",
            pca.variances
        );
        assert!((pca.variances[1] - 1.0).abs() < 0.2, "{:?}", pca.variances);
        assert!(pca.variances[2] < 1e-6);
        let first = &pca.components[..dim];
        assert!((dot(first, &u).abs() - 1.0).abs() < 1e-6);
        let second = &pca.components[dim..2 * dim];
        assert!((dot(second, &v).abs() - 1.0).abs() < 1e-6);
        assert!(dot(first, second).abs() < 1e-9);
    }
}
