//! Memory stays flat: backing up 16× more data (160 MB, 32 parts of 5 MiB) takes about as
//! much memory as backing up 10 MB. The peak RSS of each run is printed for the record.

use std::process::Command;

use bson::{Document, doc};
use cashtag_testkit::{aws_endpoint, mongo_uri, unique};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-backup");

/// Incompressible bytes, so the archive is as large as the data.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn seed(db: &mongodb::Database, docs: u64) {
    let coll = db.collection::<Document>("big");
    for start in (0..docs).step_by(500) {
        let batch: Vec<Document> = (start..(start + 500).min(docs))
            .map(|i| doc! {"i": i as i64, "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: noise(i, 10_000) }})
            .collect();
        coll.insert_many(batch).await.unwrap();
    }
}

/// Peak resident memory of all waited-for children so far, in MiB.
fn children_peak_mib() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

fn backup(bucket: &str, db: &str) {
    let out = Command::new(BIN)
        .args(["run", "--quiet"])
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
        .env("CASHTAG_BACKUP_BUCKET", bucket)
        .env("CASHTAG_BACKUP_ENV", "memory")
        .env("CASHTAG_BACKUP_DATABASES", db)
        .env("CASHTAG_BACKUP_PART_SIZE_MB", "5")
        .env("CASHTAG_REDIS_URL", cashtag_testkit::redis_url())
        .env("CASHTAG_REDIS_PREFIX", cashtag_testkit::unique("t-bkmem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_whatever_the_database_size() {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let bucket = unique("t-memory");
    let s3 = cashtag_stores::s3::client("us-east-1", &aws_endpoint()).await;
    assert!(cashtag_stores::s3::ensure_bucket(&s3, &bucket).await.unwrap(), "a new bucket");
    let small = unique("memsmall");
    let large = unique("memlarge");
    seed(&client.database(&small), 1_000).await;
    seed(&client.database(&large), 16_000).await;

    backup(&bucket, &small);
    let small_peak = children_peak_mib();
    backup(&bucket, &large);
    let large_peak = children_peak_mib();
    println!("peak RSS: 10 MB database {small_peak:.1} MiB, 160 MB database {large_peak:.1} MiB");
    assert!(large_peak < small_peak + 32.0, "memory grew with the data: {small_peak:.1} → {large_peak:.1} MiB");
    assert!(large_peak < 120.0, "peak {large_peak:.1} MiB for 160 MB of data");
}
