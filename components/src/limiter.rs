//! A token bucket per (account, region, service), shared by every run in the process, that
//! slows down when AWS throttles (multiplicative decrease) and recovers with each success
//! (additive increase), like the SDK's adaptive retry mode but across all clients.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per second for each service, and the burst a bucket holds.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub ec2: f64,
    pub iam: f64,
    pub eks: f64,
    pub sts: f64,
    pub cloudformation: f64,
    /// Elastic Load Balancing (v2).
    pub elb: f64,
    pub sqs: f64,
    /// EventBridge.
    pub events: f64,
    /// Tokens a full bucket holds (requests that may go at once after an idle period).
    pub burst: f64,
}

impl Default for RateLimits {
    /// Near AWS's documented EC2 buckets (non-mutating: 100 burst, 20/s; mutating: 50
    /// burst, 5/s): a deploy's first wave of calls goes at once, and sustained load leaves
    /// room for the customer's own tools. Throttling still halves a rate when AWS disagrees.
    fn default() -> RateLimits {
        RateLimits {
            ec2: 20.0,
            iam: 10.0,
            eks: 10.0,
            sts: 10.0,
            // DescribeStacks has a low account-wide limit; byoc reads one stack per verify.
            cloudformation: 5.0,
            elb: 10.0,
            sqs: 10.0,
            events: 10.0,
            burst: 50.0,
        }
    }
}

impl std::str::FromStr for RateLimits {
    type Err = String;

    /// `ec2=20,iam=10,eks=10,sts=10,cloudformation=5,elb=10,sqs=10,events=10,burst=50`;
    /// services left out keep their default.
    fn from_str(text: &str) -> Result<RateLimits, String> {
        let mut limits = RateLimits::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NAME=RATE, e.g. ec2=20"))?;
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 1.0)
                .ok_or_else(|| format!("{part:?}: the rate is a number >= 1"))?;
            let slot = match name.trim() {
                "ec2" => &mut limits.ec2,
                "iam" => &mut limits.iam,
                "eks" => &mut limits.eks,
                "sts" => &mut limits.sts,
                "cloudformation" => &mut limits.cloudformation,
                "elb" => &mut limits.elb,
                "sqs" => &mut limits.sqs,
                "events" => &mut limits.events,
                "burst" => &mut limits.burst,
                other => {
                    return Err(format!(
                        "unknown rate {other:?}: use ec2, iam, eks, sts, cloudformation, elb, sqs, events or burst"
                    ));
                }
            };
            *slot = value;
        }
        Ok(limits)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Ec2,
    Iam,
    Eks,
    Sts,
    Cloudformation,
    Elb,
    Sqs,
    Events,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Iam => "iam",
            Service::Eks => "eks",
            Service::Sts => "sts",
            Service::Cloudformation => "cloudformation",
            Service::Elb => "elb",
            Service::Sqs => "sqs",
            Service::Events => "events",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub account: String,
    pub region: String,
    pub service: Service,
}

struct Bucket {
    /// Current refill rate, between `floor` and the configured rate.
    rate: f64,
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

/// The lowest rate throttling can push a bucket to.
const FLOOR: f64 = 0.5;

impl RateLimiter {
    pub fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn max_rate(&self, service: Service) -> f64 {
        match service {
            Service::Ec2 => self.limits.ec2,
            Service::Iam => self.limits.iam,
            Service::Eks => self.limits.eks,
            Service::Sts => self.limits.sts,
            Service::Cloudformation => self.limits.cloudformation,
            Service::Elb => self.limits.elb,
            Service::Sqs => self.limits.sqs,
            Service::Events => self.limits.events,
        }
    }

    /// Runs `f` on the key's bucket, refilled up to now.
    fn with_bucket<T>(&self, key: &BucketKey, f: impl FnOnce(&mut Bucket, f64) -> T) -> T {
        let max = self.max_rate(key.service);
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let bucket = buckets.entry(key.clone()).or_insert_with(|| Bucket {
            rate: max,
            tokens: self.limits.burst,
            last: Instant::now(),
        });
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(self.limits.burst);
        bucket.last = now;
        f(bucket, max)
    }

    /// Waits for a token.
    pub async fn acquire(&self, key: &BucketKey) {
        loop {
            let wait = self.with_bucket(key, |b, _| {
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - b.tokens) / b.rate))
                }
            });
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// AWS throttled a call: halve the rate and empty the bucket.
    pub fn throttled(&self, key: &BucketKey) {
        self.with_bucket(key, |b, _| {
            b.rate = (b.rate / 2.0).max(FLOOR);
            b.tokens = b.tokens.min(0.0);
        });
    }

    /// A call went through: win back a twentieth of the configured rate.
    pub fn succeeded(&self, key: &BucketKey) {
        self.with_bucket(key, |b, max| b.rate = (b.rate + max / 20.0).min(max));
    }

    /// The current rate of a bucket (requests per second).
    pub fn rate(&self, key: &BucketKey) -> f64 {
        self.with_bucket(key, |b, _| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: Service) -> BucketKey {
        BucketKey {
            account: "111111111111".into(),
            region: "us-east-1".into(),
            service,
        }
    }

    #[test]
    fn rates_parse() {
        let limits: RateLimits = "ec2=7, burst=12".parse().unwrap();
        assert_eq!(
            (limits.ec2, limits.burst, limits.iam),
            (7.0, 12.0, RateLimits::default().iam)
        );
        assert!(
            "ec2"
                .parse::<RateLimits>()
                .unwrap_err()
                .contains("NAME=RATE")
        );
        assert!(
            "s3=5"
                .parse::<RateLimits>()
                .unwrap_err()
                .contains("unknown rate \"s3\"")
        );
        assert!("eks=0".parse::<RateLimits>().unwrap_err().contains(">= 1"));
    }

    #[tokio::test]
    async fn paces_after_the_burst_and_backs_off_on_throttling() {
        let limiter = RateLimiter::new(RateLimits {
            ec2: 100.0,
            burst: 5.0,
            ..RateLimits::default()
        });
        let k = key(Service::Ec2);
        let start = Instant::now();
        for _ in 0..15 {
            limiter.acquire(&k).await;
        }
        // 5 from the burst, 10 more at 100/s: about 100 ms.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(90), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");

        limiter.throttled(&k);
        limiter.throttled(&k);
        assert_eq!(limiter.rate(&k), 25.0);
        for _ in 0..20 {
            limiter.succeeded(&k);
        }
        assert_eq!(limiter.rate(&k), 100.0);
        // Buckets are independent per service (and account and region).
        assert_eq!(limiter.rate(&key(Service::Iam)), RateLimits::default().iam);
        for _ in 0..40 {
            limiter.throttled(&k);
        }
        assert_eq!(limiter.rate(&k), FLOOR);
    }
}
