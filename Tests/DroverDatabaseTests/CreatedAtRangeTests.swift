import DroverDatabase
import Foundation
import Testing

@Suite("created_at filters")
struct CreatedAtRangeTests {
    @Test("bounds keep their meaning at the stored millisecond: gt and lt exclude, any offset is the instant it names")
    func bounds() throws {
        let stored = try #require(CreatedAtRange.instant("2026-12-05T09:30:12.345Z"))
        let sameInIndia = try #require(CreatedAtRange.instant("2026-12-05T15:00:12.345+05:30"))
        #expect(stored == sameInIndia)
        #expect(CreatedAtRange(after: sameInIndia).contains(stored))
        #expect(!CreatedAtRange(after: sameInIndia, afterInclusive: false).contains(stored))
        #expect(!CreatedAtRange(before: stored, beforeInclusive: false).contains(stored))
        // A bound finer than the stored milliseconds: gte 12.3456 starts at 12.346, so 12.345 is out.
        let finer = try #require(CreatedAtRange.instant("2026-12-05T09:30:12.3456Z"))
        #expect(!CreatedAtRange(after: finer).contains(stored))
        #expect(CreatedAtRange.instant("yesterday") == nil && CreatedAtRange.instant("2026-12-05 09:30") == nil)
    }
}
