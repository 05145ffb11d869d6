import DroverCore

/// The paging of a list endpoint: `limit`, and the `page` cursor `page_N`, an offset opaque to
/// clients.
struct PageQuery {
    let limit: Int
    let offset: Int

    init(limit: Int, offset: Int) {
        self.limit = limit
        self.offset = offset
    }

    init(_ input: RequestInput, defaultLimit: Int = 20, maxLimit: Int = 100) throws {
        limit = try input.int("limit", default: defaultLimit, range: 1...maxLimit)
        offset = try input.pageOffset()
    }

    /// How many rows to fetch: one more than a page, to tell whether another page follows.
    var fetch: Int { limit + 1 }

    /// The cursor of the page after this one, given how many rows a fetch of `fetch` returned.
    func next(fetched count: Int) -> String? {
        count > limit ? "page_\(offset + limit)" : nil
    }

    /// A page of rows fetched at `offset` with `fetch`.
    func page<Row>(_ rows: some Collection<Row>, _ item: (Row) -> JSONValue) -> JSONValue {
        DroverAPI.page(rows.prefix(limit).map(item), next: next(fetched: rows.count))
    }

    /// A page of `all` matching rows, cut here rather than by the query; only the page's rows
    /// are turned into JSON.
    func page<Row>(of all: [Row], _ item: (Row) -> JSONValue) -> JSONValue {
        let rest = all.dropFirst(offset)
        return DroverAPI.page(rest.prefix(limit).map(item), next: next(fetched: rest.count))
    }
}
