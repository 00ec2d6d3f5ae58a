// A wave's end is computed from its last day on load, not set by hand.
use ami_core::Definition;

fn main() {
    let def = Definition::ami2();
    let mut campaign = def.campaign().clone();
    campaign.waves[0].closes_at = chrono::Utc::now();
}
