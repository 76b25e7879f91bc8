//! Versioned agent configurations.

use super::support::*;

/// Agent configs: drafts are replaceable, final versions are immutable (`Conflict`), `None`
/// loads the highest version, versions list ascending.
pub async fn agent_config_versions(store: &dyn AgentConfigStore) {
    let t = fresh_tenant();
    let agent = AgentId::from_static("support");
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        None,
        "no config before the first put"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &agent).await,
            "list_agent_config_versions"
        ),
        Vec::<u32>::new()
    );

    let v1 = agent_config(&agent, 1, "v1");
    ok(
        store.put_agent_config(&t, &v1).await,
        "put_agent_config(v1)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1.clone()),
        "a config must round-trip"
    );

    let mut v1_edit = v1.clone();
    v1_edit.system_prompt = "v1, edited".into();
    ok(
        store.put_agent_config(&t, &v1_edit).await,
        "put_agent_config over a draft",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1_edit.clone()),
        "putting a draft version again replaces it"
    );

    let v1_final = v1_edit.clone().finalized();
    ok(
        store.put_agent_config(&t, &v1_final).await,
        "put_agent_config finalizing a draft",
    );
    let mut tampered = v1.clone();
    tampered.system_prompt = "changed after release".into();
    expect_err(
        store.put_agent_config(&t, &tampered).await,
        ErrorKind::Conflict,
        "putting a draft over a final version",
    );
    expect_err(
        store
            .put_agent_config(&t, &tampered.clone().finalized())
            .await,
        ErrorKind::Conflict,
        "putting a final version over a final version",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1_final.clone()),
        "a final version must not change"
    );

    let v2 = v1_final.next_draft();
    ok(
        store.put_agent_config(&t, &v2).await,
        "put_agent_config(v2)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        Some(v2.clone()),
        "None loads the highest version"
    );

    // Highest, not most recently written.
    let v5 = agent_config(&agent, 5, "v5");
    let v4 = agent_config(&agent, 4, "v4").finalized();
    ok(
        store.put_agent_config(&t, &v5).await,
        "put_agent_config(v5)",
    );
    ok(
        store.put_agent_config(&t, &v4).await,
        "put_agent_config(v4)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        Some(v5),
        "None loads the highest version, not the last written"
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(4)).await,
            "get_agent_config"
        ),
        Some(v4)
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(3)).await,
            "get_agent_config"
        ),
        None,
        "a version never put does not exist"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &agent).await,
            "list_agent_config_versions"
        ),
        vec![1, 2, 4, 5],
        "versions are listed ascending"
    );

    let other = AgentId::from_static("sales");
    assert_eq!(
        ok(
            store.get_agent_config(&t, &other, None).await,
            "get_agent_config"
        ),
        None,
        "another agent's configs are separate"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &other).await,
            "list_agent_config_versions"
        ),
        Vec::<u32>::new()
    );
}
