//! Who sends each request of a replayed trace, with which plan and which model.
//!
//! The traces carry no identity, so a replay assigns each row deterministically:
//!
//! - **Tenant**: a Zipf draw with exponent 1 over N tenants. Tenant `k` (1-based rank) has
//!   weight `floor(2^32 / k)`; the draw is `draw(seed, line, 0)` scaled onto the sum of the
//!   weights. So tenant 1 sends about twice as many requests as tenant 2, three times as many
//!   as tenant 3, and so on.
//! - **Model**: `draw(seed, line, 1)` picks from the tenant's plan: when the draw is 0 modulo
//!   100, the client asks for the plan's "stray" model (a model outside its allowlist, when
//!   the plan has one); otherwise the draw, scaled onto the sum of the plan's traffic weights,
//!   picks a model (or alias) by weight.
//! - `draw(seed, line, stream)` is splitmix64 applied twice: to `seed` plus a per-stream
//!   constant, then to that result XOR the row's line number in the file. The line number (not
//!   the count of good rows) is used so that a broken row does not shift the rows after it.
//!
//! The same trace, seed and tenant count always give the same assignment, on every platform:
//! only integer arithmetic is involved.

/// A plan: the limits of a tenant's key and of the tenant (owner) itself, and its traffic.
#[derive(Debug)]
pub struct Plan {
    /// The plan's name, shown in the report and stored in the key's metadata.
    pub name: &'static str,
    /// Limits of the tenant's key.
    pub key_limits: &'static [&'static str],
    /// Limits of the tenant as an owner, shared by its keys.
    pub owner_limits: &'static [&'static str],
    /// The model allowlist; `None` allows every model.
    pub models: Option<&'static [&'static str]>,
    /// Aliases the tenant's clients use.
    pub aliases: &'static [(&'static str, &'static str)],
    /// What the tenant's clients ask for (a model or an alias) and how often.
    pub traffic: &'static [(&'static str, u32)],
    /// A model outside the allowlist that clients ask for now and then.
    pub stray: Option<&'static str>,
    /// The key expires this many minutes after the trace starts.
    pub expires_after_minutes: Option<i64>,
}

/// The plans, assigned to tenants by rank in this order, then again from the top.
///
/// The amounts are sized for an hour of the Azure conversation trace (about 19,000 requests
/// of about 1,150 prompt and 210 completion tokens) so that each kind of limit is reached by
/// some tenant within the hour.
pub const PLANS: [Plan; 5] = [
    Plan {
        name: "scale",
        key_limits: &["requests=600/min"],
        owner_limits: &["cost=$50/day", "tokens=50M/day"],
        models: Some(&["gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5"]),
        aliases: &[],
        traffic: &[
            ("gpt-4o", 40),
            ("gpt-4o-mini", 30),
            ("gpt-4.1", 20),
            ("claude-sonnet-4-5", 10),
        ],
        stray: Some("claude-opus-4-5-20251101"),
        expires_after_minutes: None,
    },
    Plan {
        name: "free",
        key_limits: &["requests=20/min", "tokens=1M/day"],
        owner_limits: &[],
        models: Some(&["gpt-4.1-nano", "gemini/gemini-2.5-flash-lite"]),
        aliases: &[],
        traffic: &[("gpt-4.1-nano", 70), ("gemini/gemini-2.5-flash-lite", 30)],
        stray: Some("gpt-4o"),
        expires_after_minutes: None,
    },
    Plan {
        name: "starter",
        key_limits: &["requests=60/min"],
        owner_limits: &["cost=$1/day"],
        models: Some(&["gpt-4o-mini", "claude-haiku-4-5", "deepseek/deepseek-chat"]),
        aliases: &[],
        traffic: &[
            ("gpt-4o-mini", 60),
            ("claude-haiku-4-5", 25),
            ("deepseek/deepseek-chat", 15),
        ],
        stray: Some("claude-sonnet-4-5"),
        expires_after_minutes: None,
    },
    Plan {
        name: "pro",
        key_limits: &["requests=300/min", "tokens=10M/day"],
        owner_limits: &["cost=$20/month"],
        models: None,
        aliases: &[("fast", "gpt-4o-mini"), ("smart", "claude-sonnet-4-5")],
        traffic: &[
            ("gpt-4o", 35),
            ("smart", 25),
            ("fast", 30),
            ("gemini/gemini-2.5-flash", 10),
        ],
        stray: None,
        expires_after_minutes: None,
    },
    Plan {
        name: "trial",
        key_limits: &["requests=10/min", "cost=$0.25"],
        owner_limits: &[],
        models: Some(&["gpt-4o-mini"]),
        aliases: &[],
        traffic: &[("gpt-4o-mini", 100)],
        stray: Some("gpt-4o"),
        expires_after_minutes: Some(45),
    },
];

impl Plan {
    /// The plan of the tenant of rank `rank` (1-based).
    pub fn of_rank(rank: u32) -> &'static Plan {
        let index = (rank.saturating_sub(1) as usize) % PLANS.len();
        &PLANS[index]
    }

    /// The model a client asks for: a model name or one of the plan's aliases.
    pub fn pick(&self, draw: u64) -> &'static str {
        if let Some(stray) = self.stray
            && draw.is_multiple_of(100)
        {
            return stray;
        }
        let total: u64 = self.traffic.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut point = scale(draw, total);
        for (model, weight) in self.traffic {
            let weight = u64::from(*weight);
            if point < weight {
                return model;
            }
            point -= weight;
        }
        self.traffic.last().map_or("", |(model, _)| model)
    }

    /// The model an alias stands for (or the name itself).
    pub fn resolve(&self, asked: &'static str) -> &'static str {
        self.aliases
            .iter()
            .find(|(alias, _)| *alias == asked)
            .map_or(asked, |(_, model)| model)
    }

    /// Every real model the plan's traffic can name, aliases resolved, the stray included.
    pub fn models_used(&self) -> Vec<&'static str> {
        let mut models: Vec<&'static str> =
            self.traffic.iter().map(|(m, _)| self.resolve(m)).collect();
        models.extend(self.stray);
        models
    }
}

/// splitmix64 (Steele, Lea and Flood 2014): a bijective 64-bit mixer. The arithmetic is
/// modulo 2^64 by design, so it is written with explicit wrapping operations.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The deterministic draw of one stream for one line of the trace.
pub fn draw(seed: u64, line: u64, stream: u64) -> u64 {
    let stream_seed = splitmix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    splitmix64(stream_seed ^ line)
}

/// Maps a uniform 64-bit draw onto `0..n` without modulo bias worth mentioning (Lemire's
/// multiply-shift).
fn scale(draw: u64, n: u64) -> u64 {
    ((u128::from(draw) * u128::from(n)) >> 64) as u64
}

/// A Zipf distribution with exponent 1 over `n` ranks, in integers.
#[derive(Debug)]
pub struct Zipf {
    /// Cumulative weights: `cumulative[k]` is the sum of the weights of ranks 1..=k+1.
    cumulative: Vec<u64>,
}

impl Zipf {
    /// The distribution over ranks 1..=n (n >= 1).
    pub fn new(n: u32) -> Zipf {
        const SCALE: u64 = 1 << 32;
        let mut total = 0u64;
        let cumulative = (1..=u64::from(n.max(1)))
            .map(|k| {
                total = total.saturating_add(SCALE / k);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    /// The rank (1-based) a draw lands on.
    pub fn rank(&self, draw: u64) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let point = scale(draw, total);
        let index = self.cumulative.partition_point(|&c| c <= point);
        u32::try_from(index + 1).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference() {
        // First outputs of the reference generator seeded with 0 (state advanced by the
        // golden gamma each step).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn zipf_ranks_follow_one_over_k() {
        let zipf = Zipf::new(4);
        let mut counts = [0u64; 4];
        for line in 0..120_000 {
            let rank = zipf.rank(draw(7, line, 0));
            counts[(rank - 1) as usize] += 1;
        }
        // Expected shares 12/25, 6/25, 4/25, 3/25 of 120,000: 57,600, 28,800, 19,200, 14,400.
        let expected = [57_600u64, 28_800, 19_200, 14_400];
        for (got, want) in counts.iter().zip(expected) {
            assert!(got.abs_diff(want) < want / 20, "{counts:?}");
        }
    }

    #[test]
    fn draws_are_deterministic_and_seeded() {
        assert_eq!(draw(1, 42, 0), draw(1, 42, 0));
        assert_ne!(draw(1, 42, 0), draw(2, 42, 0));
        assert_ne!(draw(1, 42, 0), draw(1, 42, 1));
        assert_eq!(Zipf::new(1).rank(u64::MAX), 1);
        assert_eq!(Zipf::new(3).rank(0), 1);
        assert_eq!(Zipf::new(3).rank(u64::MAX), 3);
    }

    #[test]
    fn plans_pick_every_model_of_their_traffic_and_nothing_else() {
        for plan in &PLANS {
            let mut seen = std::collections::BTreeSet::new();
            for d in 0..2000u64 {
                let asked = plan.pick(splitmix64(d));
                assert!(plan.models_used().contains(&plan.resolve(asked)), "{asked}");
                seen.insert(asked);
            }
            for (asked, _) in plan.traffic {
                assert!(
                    seen.contains(asked),
                    "plan {} never asks for {asked}",
                    plan.name
                );
            }
            if let Some(stray) = plan.stray {
                assert!(seen.contains(stray), "plan {} never strays", plan.name);
            }
        }
    }
}
