import Foundation
import Testing

@testable import DroverAPI

/// The parts of uploads and mounts that decide where bytes go: the multipart parser, mount
/// paths, and the path component made from ids.
@Suite("File inputs") struct FileInputTests {
    @Test("a multipart body gives each part's name, filename, type and exact bytes")
    func multipart() throws {
        let payload = Data([0x00, 0x0D, 0x0A, 0x2D, 0x2D, 0xFF]) + Data("not the --boundary\r\n".utf8)
        var body = Data("--b0undary\r\nContent-Disposition: form-data; name=\"expires_in_seconds\"\r\n\r\n3600\r\n".utf8)
        body += Data(
            "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".bin\"\r\nContent-Type: application/x-thing\r\n\r\n"
                .utf8)
        body += payload + Data("\r\n--b0undary--\r\n".utf8)
        #expect(MultipartForm.boundary(contentType: "multipart/form-data; boundary=\"b0undary\"") == "b0undary")
        #expect(MultipartForm.boundary(contentType: "application/json") == nil)
        let form = try MultipartForm.parse(body, boundary: "b0undary")
        #expect(form.parts.map(\.name) == ["expires_in_seconds", "file"])
        let file = try #require(form.part("file"))
        #expect(file.body == payload)
        #expect(file.filename == "a \"q\".bin" && file.contentType == "application/x-thing")
        #expect(throws: APIError.self) {
            try MultipartForm.parse(Data("--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end".utf8), boundary: "b0undary")
        }
    }

    @Test("mount paths stay under /workspace; .. and outside paths name the field")
    func mountPaths() throws {
        #expect(try UploadedFiles.mountPath("data/in.csv", field: "f") == "data/in.csv")
        #expect(try UploadedFiles.mountPath("/workspace//./data/in.csv", field: "f") == "data/in.csv")
        for bad in ["../x", "/workspace/a/../../x", "/etc/passwd", "/workspacex/y", "/workspace", "/workspace/.", "", "a\0b"] {
            let error = try #require(throws: APIError.self) { try UploadedFiles.mountPath(bad, field: "resources[3].mount_path") }
            #expect(error.message.hasPrefix("resources[3].mount_path: ") && error.message.contains("Fix:"), "\(bad)")
        }
    }

    @Test("filenames keep their last component; path components from ids are always safe")
    func names() {
        #expect(UploadedFiles.storedFilename("../../etc/passwd") == "passwd")
        #expect(UploadedFiles.storedFilename("C:\\x\\y.txt") == "y.txt")
        #expect(UploadedFiles.storedFilename(nil) == "unnamed" && UploadedFiles.storedFilename("..") == "unnamed")
        #expect(FileBlobs.component("file_01ABC") == "file_01ABC")
        for hostile in ["..", ".", "a/b", ""] {
            #expect(!FileBlobs.component(hostile).contains("/") && FileBlobs.component(hostile) != ".." && FileBlobs.component(hostile) != ".")
        }
    }
}
