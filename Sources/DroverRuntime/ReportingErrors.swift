import ArgumentParser
import DroverCore
import DroverRedis
import Foundation

/// Turns Drover's errors into one clear line on standard error and a non-zero exit.
public func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as any ActionableError {
        FileHandle.standardError.write(Data("drover: error: \(error.description)\n".utf8))
        throw ExitCode(1)
    } catch let error as EmbeddedRedisError {
        FileHandle.standardError.write(Data("drover: error: \(error.description)\n".utf8))
        throw ExitCode(1)
    }
}
