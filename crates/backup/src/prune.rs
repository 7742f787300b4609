//! Retention: keep the newest backup of each of the last N days that have backups, and
//! of each of the last M ISO weeks; the rest may go. [`prune`] applies it in S3.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::manifest::{manifest_key, verified_key};
use crate::{BackupError, Target, key_time};

pub fn select_keep(backups: &[(String, DateTime<Utc>)], keep_daily: usize, keep_weekly: usize) -> BTreeSet<String> {
    let mut newest_by_day: BTreeMap<NaiveDate, (DateTime<Utc>, &str)> = BTreeMap::new();
    let mut newest_by_week: BTreeMap<(i32, u32), (DateTime<Utc>, &str)> = BTreeMap::new();
    for (key, at) in backups {
        let day = at.date_naive();
        let week = (at.iso_week().year(), at.iso_week().week());
        let d = newest_by_day.entry(day).or_insert((*at, key));
        if *at > d.0 {
            *d = (*at, key);
        }
        let w = newest_by_week.entry(week).or_insert((*at, key));
        if *at > w.0 {
            *w = (*at, key);
        }
    }
    let mut keep = BTreeSet::new();
    keep.extend(newest_by_day.values().rev().take(keep_daily).map(|(_, k)| k.to_string()));
    keep.extend(newest_by_week.values().rev().take(keep_weekly).map(|(_, k)| k.to_string()));
    keep
}

/// Applies the retention policy; deletes only with `yes`. Returns (kept, deleted) keys.
pub async fn prune(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    keep_daily: usize,
    keep_weekly: usize,
    yes: bool,
) -> Result<(Vec<String>, Vec<String>), BackupError> {
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let objects = crate::s3::list(s3, &target.bucket, &target.root()).await?;
    let backups: Vec<(String, DateTime<Utc>)> =
        objects.iter().filter_map(|(k, _)| key_time(k).map(|t| (k.clone(), t))).collect();
    let mut keep = crate::prune::select_keep(&backups, keep_daily, keep_weekly);
    // Whatever the retention says, the newest verified backup stays: it is the one an
    // operator knows restores.
    let all_keys: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    if let Some((newest_verified, _)) =
        backups.iter().filter(|(k, _)| all_keys.contains(verified_key(k).as_str())).max_by_key(|(_, t)| *t)
    {
        keep.insert(newest_verified.clone());
    }
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (k, _) in &backups {
        if keep.contains(k) {
            kept.push(k.clone());
        } else {
            deleted.push(k.clone());
        }
    }
    if yes {
        let all: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
        for k in &deleted {
            for obj in [k.clone(), manifest_key(k), verified_key(k)] {
                if all.contains(obj.as_str()) {
                    crate::s3::delete(s3, &target.bucket, &obj).await?;
                }
            }
        }
    }
    kept.sort();
    deleted.sort();
    Ok((kept, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_and_weekly() {
        // Two backups a day for 20 days ending Sunday 2026-11-29.
        let mut b = Vec::new();
        for d in 0..20 {
            for h in [1, 21] {
                let at: DateTime<Utc> = format!("2026-11-{:02}T{h:02}:00:00Z", 10 + d).parse().unwrap();
                b.push((format!("k{d}-{h}"), at));
            }
        }
        let keep = select_keep(&b, 3, 2);
        // Newest of 29, 28, 27; newest of the weeks ending 29 (= 29's) and 22.
        let want: BTreeSet<String> = ["k19-21", "k18-21", "k17-21", "k12-21"].iter().map(|s| s.to_string()).collect();
        assert_eq!(keep, want);
    }
}
