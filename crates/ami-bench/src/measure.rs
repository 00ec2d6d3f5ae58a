//! Latencies and errors of one measure, and the figures drawn from them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Latencies of one measure.
pub struct Measure {
    pub transitions: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// The latencies of the first write of each dossier (the deposit), also
    /// counted in `latencies`: a deposit does more than a transition.
    pub deposits: Vec<Duration>,
    pub errors: usize,
}

/// What one client task measured: its latencies, those of its deposits
/// among them, and its errors.
pub type ClientTask = tokio::task::JoinHandle<(Vec<Duration>, Vec<Duration>, usize)>;

impl Measure {
    pub fn empty() -> Measure {
        Measure {
            transitions: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            deposits: Vec::new(),
            errors: 0,
        }
    }

    /// Times one GET (its whole body read) into this measure.
    pub async fn time_get(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> anyhow::Result<()> {
        let t = Instant::now();
        // A web session's cookie, or an API token.
        let request = match token.strip_prefix("cookie:") {
            Some(cookie) => client.get(url).header(reqwest::header::COOKIE, cookie),
            None => client.get(url).bearer_auth(token),
        };
        let r = request.send().await?;
        let ok = r.status().is_success();
        r.bytes().await?;
        if ok {
            self.latencies.push(t.elapsed());
        } else {
            self.errors += 1;
        }
        Ok(())
    }

    /// Lets the clients run for `seconds`, stops them and gathers their figures.
    pub async fn after(
        seconds: u64,
        stop: &AtomicBool,
        started: Instant,
        tasks: Vec<ClientTask>,
    ) -> Measure {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut m = Measure::empty();
        for t in tasks {
            if let Ok((l, d, e)) = t.await {
                m.latencies.extend(l);
                m.deposits.extend(d);
                m.errors += e;
            }
        }
        m.elapsed = started.elapsed();
        m.transitions = m.latencies.len();
        m
    }

    pub fn per_second(&self) -> f64 {
        self.transitions as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    pub fn line(&mut self, name: &str) -> String {
        self.deposits.sort_unstable();
        let deposit_p50 = self
            .deposits
            .get(self.deposits.len() / 2)
            .map(|d| format!(", deposits p50 {:.2} ms", ms(*d)))
            .unwrap_or_default();
        format!(
            "{name:<14} {:>9.0} transitions/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} transitions, {} errors{deposit_p50})",
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.transitions,
            self.errors
        )
    }

    /// The figures a run keeps for the medians.
    pub fn figures(&mut self) -> Figures {
        Figures {
            per_second: self.per_second(),
            p50_ms: ms(self.percentile(0.50)),
            p99_ms: ms(self.percentile(0.99)),
            errors: self.errors,
        }
    }
}

/// Throughput and latency of one measure (or the medians of several).
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Summed, not a median: any error is worth seeing.
    pub errors: usize,
}

impl Figures {
    /// Each figure's median over the runs; errors summed.
    pub fn medians(runs: &[Figures]) -> Figures {
        Figures {
            per_second: median(runs.iter().map(|f| f.per_second).collect()),
            p50_ms: median(runs.iter().map(|f| f.p50_ms).collect()),
            p99_ms: median(runs.iter().map(|f| f.p99_ms).collect()),
            errors: runs.iter().map(|f| f.errors).sum(),
        }
    }
}

/// The median (the upper one of an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
