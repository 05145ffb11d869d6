import GRDB

/// The tables of one feature, and the migrations that make them. Each feature registers its own,
/// under names that say what they make; `DatabaseSchema` only puts the features in order.
protocol TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator)
}

/// Every feature's tables, in the order their migrations run.
///
/// Drover 0.1 numbered its migrations (`v1: sessions and events` ... `v6: deployment paused
/// reasons`) in one list. Each feature's migration now merges the numbered ones that built its
/// tables (GRDB's `merging:`), so a database from then is brought to the same schema as a new
/// one, and its old identifiers are replaced by the new names. `v1: control plane` built
/// the tables of four features at once; the first of them to run takes its identifier, and the
/// others find their tables already there.
enum DatabaseSchema {
    static let groups: [any TableGroup.Type] = [
        SessionMirrorTables.self,
        ControlPlaneTables.self,
        BatchTables.self,
        JobCatalogTables.self,
        DeploymentTables.self,
        EgressTables.self,
        VaultTables.self,
        SessionRepositoryTables.self,
        WebhookTables.self,
        EnvironmentKeyTables.self,
    ]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for group in groups {
            group.registerMigrations(in: &migrator)
        }
        return migrator
    }

    /// The identifiers Drover 0.1 wrote, in the order it ran them.
    static let numberedIdentifiers = [
        "v1: sessions and events", "v1: control plane", "v2: batch items and session origins", "v3: job catalog",
        "v2: deployments by name, and deployment runs", "v2: api sessions", "v4: files", "v5: session environments",
        "v6: deployment paused reasons",
    ]
}
