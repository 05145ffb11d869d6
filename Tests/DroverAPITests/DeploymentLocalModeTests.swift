import DroverAPI
import DroverCore
import DroverSchedule
import Testing

extension LocalModeTests {
    /// `drover apply` writes `DeploymentStore.defaultWorkspace`; local (no-key) mode must be that
    /// same workspace, or a local user would not see the deployments of `Schedules/`.
    @Test func localModeSeesTheDeploymentsDroverApplyWrote() async throws {
        try await withAPI { base, store in
            let file = try ScheduleFile.parse(
                """
                name: from-file
                agent: {model: claude-sonnet-4-5}
                initial_events:
                  - {type: user.message, content: [{type: text, text: hi}]}
                schedule: {type: cron, expression: "0 6 * * *", timezone: UTC}
                """, file: "from-file.yaml")
            let report = try await DeploymentStore(database: store.database).apply([file])
            #expect(report.created == ["from-file"])

            let (status, page) = try await call(base + "/v1/deployments")
            #expect(status == 200)
            guard case .array(let data)? = page.objectValue?["data"] else {
                Issue.record("no data in \(page)")
                return
            }
            #expect(data.compactMap { $0.objectValue?["name"]?.stringValue } == ["from-file"])
            let id = try #require(data.first?.objectValue?["id"]?.stringValue)
            let (editStatus, edit) = try await call(base + "/v1/deployments/\(id)", "POST", body: #"{"name": "renamed"}"#)
            #expect(editStatus == 400)
            #expect(edit.objectValue?["error"]?.objectValue?["message"]?.stringValue?.contains("from-file.yaml") == true)
            let (runStatus, run) = try await call(base + "/v1/deployments/\(id)/run", "POST")
            #expect(runStatus == 200)
            #expect(run.objectValue?["trigger_context"]?.objectValue?["type"]?.stringValue == "manual")
        }
    }
}
