// Package userdata decodes and splits EC2 user data the way cloud-init does, so
// users can bring their cloud-init user data unchanged.
//
// [Parse] undoes gzip, splits MIME multipart messages (nested, base64 and
// quoted-printable parts, message/rfc822 wrappers), classifies every part by its
// Content-Type and first line (#!, #cloud-config, #cloud-boothook, #include,
// ## template: jinja, ...), expands #cloud-config-archive lists and names
// unnamed parts part-001, part-002, ... in cloud-init's order. [Resolve] replaces
// #include parts by what a caller-supplied [Fetcher] returns. [Result.Render] fills a
// "## template: jinja" part from instance facts.
//
// Everything here is a pure function of its input: no network, no files.
// User data carries secrets, so no error, [Warning] or [Describe] string ever
// contains a byte of a part's body: they name the part (index, filename,
// content type) and describe its shape.
//
// Where cloud-init would fail without saying so, this package does better and
// says so in the comment at the spot: a UTF-8 byte order mark before a header is
// accepted; a script indented or preceded by blank lines (a Terraform heredoc)
// or with a CRLF "#!" line is made executable; 8-bit MIME bodies are kept as
// bytes instead of being mangled; a message/rfc822 part is not run twice.
package userdata
