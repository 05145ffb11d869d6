import DroverCore
import DroverDatabase
import DroverTesting
import Foundation
import Testing

@testable import DroverSchedule

@Suite("Deployments store")
struct DeploymentStoreTests {
    func store() throws -> (DeploymentStore, String) {
        let path = temporaryDatabasePath()
        return (DeploymentStore(database: try MirrorDatabase(path: path)), path)
    }

    @Test("apply creates, updates, leaves alone and archives; --dry-run changes nothing")
    func apply() async throws {
        let (store, path) = try store()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let a = try SchedulerRig.file(name: "alpha")
        let b = try SchedulerRig.file(name: "beta", expression: "0 9 * * mon-fri")
        let now = SchedulerRig.start

        let dry = try await store.apply([a, b], dryRun: true, now: now)
        #expect(dry.created == ["alpha", "beta"])
        #expect(try await store.list().isEmpty)

        #expect(try await store.apply([a, b], now: now).created == ["alpha", "beta"])
        let first = try await store.find("beta")
        #expect(try await store.apply([a, b], now: now + 60) == .init(unchanged: ["alpha", "beta"]))

        var changed = try SchedulerRig.file(name: "beta", expression: "0 10 * * mon-fri")
        changed.agent = .object(["model": .string("claude-opus-4-1"), "name": .string("beta")])
        let report = try await store.apply([changed], now: now + 120)
        #expect(report.updated == ["beta"])
        #expect(report.archived == ["alpha"])
        let updated = try await store.find("beta")
        #expect(updated.id == first.id)
        let resource = store.resource(updated, now: now)
        #expect(resource.objectValue?["agent"]?.objectValue?["version"] == .number(2))
        #expect(resource.objectValue?["schedule"]?.objectValue?["expression"]?.stringValue == "0 10 * * mon-fri")
        #expect(try await store.list().map(\.name) == ["beta"])
        #expect(try await store.list(includeArchived: true).count == 2)
        #expect(try await store.find(first.id).name == "beta")
    }

    @Test(
        "the deployment and run JSON validate against the SDK's models, with upcoming_runs_at",
        .enabled(if: schedulePython != nil, "needs .venv from scripts/setup"))
    func sdkShapes() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            rig.clock.set(minute(1) + 1)
            _ = try await scheduler.tick()
            _ = try await rig.store.pause("every-minute")
            let row = try await rig.store.find("every-minute")
            let deployment = rig.store.resource(row, now: minute(1) + 1)
            let schedule = try #require(deployment.objectValue?["schedule"]?.objectValue)
            #expect(schedule["upcoming_runs_at"] == .array((2...6).map { .string(Timestamp.seconds(minute($0))) }))
            #expect(schedule["last_run_at"]?.stringValue != nil)
            #expect(deployment.objectValue?["status"] == .string("paused"))
            #expect(deployment.objectValue?["paused_reason"] == .object(["type": .string("manual")]))
            let runs = try await rig.store.runs("every-minute")
            #expect(runs.count == 1)

            let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-depl-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: file) }
            try Data(JSONValue.object(["deployments": .array([deployment]), "runs": .array(runs)]).compactJSON.utf8).write(to: file)
            let (status, output) = try await runProgram(
                schedulePython!, [projectRoot.appendingPathComponent("Tests/oracle/validate_deployments.py").path, file.path])
            #expect(status == 0, "\(output)")
            #expect(output.contains("BetaManagedAgentsDeployment depl_"))
            #expect(output.contains("BetaManagedAgentsDeploymentRun drun_"))
        }
    }

    @Test("pausing an unknown deployment names it and the fix")
    func unknown() async throws {
        let (store, path) = try store()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        await #expect {
            _ = try await store.pause("nope")
        } throws: { error in
            "\(error)".contains("'nope' is not a deployment") && "\(error)".contains("Fix:")
        }
    }
}
