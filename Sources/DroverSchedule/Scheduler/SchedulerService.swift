import ServiceLifecycle

/// The scheduler under a service group (`drover scheduler`, and later `drover serve`): a
/// graceful shutdown stops the loop and releases the lock.
public struct SchedulerService: Service {
    public let scheduler: Scheduler

    public init(scheduler: Scheduler) {
        self.scheduler = scheduler
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await scheduler.run()
        }
    }
}
