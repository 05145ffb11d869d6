import DroverCore

extension SessionLog {
    /// The child threads a session started, in order: its log's `session.thread_created` events.
    public func threadIDs(of session: SessionID) async throws(SessionLogError) -> [SessionID] {
        var ids: [SessionID] = []
        try await replay(session, afterSeq: 0) { event in
            guard event.kind == .sessionThreadCreated, case .sessionThreadCreated(let created)? = event.payload,
                let id = try? SessionID(created.sessionThreadId), !ids.contains(id)
            else { return }
            ids.append(id)
        }
        return ids
    }

    /// Ends every child thread of a session that ends (archived, terminated, cancelled): each
    /// stops what it runs now and takes no more messages. A thread that ended already is left.
    public func endThreads(of session: SessionID) async throws(SessionLogError) {
        for thread in try await threadIDs(of: session) { try await endThread(thread) }
    }

    /// Ends one thread: an interrupt stops its running turn, and the termination refuses every
    /// later message. False when it had ended already.
    @discardableResult
    public func endThread(_ thread: SessionID) async throws(SessionLogError) -> Bool {
        do {
            try await append(thread, [.userInterrupt(UserInterrupt()), .sessionStatusTerminated], clientKey: "thread-ended")
            return true
        } catch .sessionTerminated {
            return false
        }
    }
}
