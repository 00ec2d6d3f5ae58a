//! `ami bench`: the service over HTTP against the bare database.

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Database to measure (a fresh one is best).
    #[arg(long, env = "AMI_DATABASE_URL", default_value = "sqlite://ami-bench.db")]
    pub database_url: String,
}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("pas encore disponible")
}
