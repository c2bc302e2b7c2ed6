//! Must not compile with rocket_social_auth's default features: the fakes are behind
//! `features = ["testing"]`. `.ci/run` checks that the compiler's error is about `testing`.

use rocket_social_auth::testing::FakeGithub;

fn main() {
    let _ = FakeGithub::new("client-id", "client-secret");
}
