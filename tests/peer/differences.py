"""Every intentional difference between KeyedStorage and Django's storage tests, with its reason.

DIFFERENCES maps "<peer class>.<test method>" (as collected in tests/peer) to the reason the
test fails on purpose. Each listed test runs as an expected failure, reported as XFAIL with
its reason; if it starts passing, the run fails ("Unexpected success"), so the list stays
true. A failing test that is not listed is a bug to fix; never add one here without a reason
the documentation backs.

Where only the set-up differs, the test is adapted instead, so all its assertions still run:

- Every class: FileSystemStorage(location, base_url, file_permissions_mode,
  directory_permissions_mode) becomes override_settings(MEDIA_ROOT, MEDIA_URL,
  FILE_UPLOAD_PERMISSIONS, FILE_UPLOAD_DIRECTORY_PERMISSIONS) for the test and a KeyedStorage
  (harness.PeerMixin); the test models' storages are KeyedStorage for the whole run.
- The KeyedStorage the tests get answers FileSystemStorage's location and base_url, read-only,
  from the configuration (MEDIA_ROOT; the absolute link prefix): harness.PeerStorage.
- KeyedOverwritingStorageTests: FileSystemStorage(allow_overwrite=True) is
  KeyedStorage.save(name, content, overwrite=True).
- KeyedGenerateFilenameStorageTests: a dangerous name must raise Django's
  SuspiciousFileOperation, worded by Django or by keyed_storage ("Refused key ...").
- KeyedFileLikeObjectTestCase: available_apps = None instead of [], as the demo site's
  middleware needs django.contrib.auth.
- Settings: USE_TZ = False and a private temporary directory, as Django's own test settings
  and runtests.py have them; KEYED_STORAGE_BASE_URL = http://testserver, as links made
  outside a request need an origin.
"""

_ABSOLUTE_URLS = (
    "Links are absolute and come from the configuration (KEYED_STORAGE_BASE_URL or the request's "
    "origin, then MEDIA_URL; docs 'Links'): there is no base_url to set, and no relative "
    "'/test_media_url/...' link."
)
_FILE_URL = (
    "url() is absolute (http://testserver/test_media_url/test.file, docs 'Links'), "
    "percent-encodes !*'() as well, and refuses names that are not keys (NUL, backslashes, a "
    "leading '/', docs 'Safety') instead of rewriting them into a link."
)
_NO_ARGUMENTS = (
    "KeyedStorage() takes no arguments: MEDIA_ROOT, MEDIA_URL and the upload permissions are read "
    "from settings for every instance alike, so there is no explicit per-instance location, "
    "base_url or mode that should survive a settings change (nor base_location attribute)."
)
_EMPTY_LOCATION = (
    "FileSystemStorage(location='') means the current directory; KeyedStorage has no location "
    "argument, and an empty MEDIA_ROOT in local mode is a configuration error (keyed_storage.E009)."
)
_READ_NOT_CHUNKS = (
    "Content is streamed with read() (shutil.copyfileobj on disk; boto3's upload_fileobj in S3, "
    "as django-storages does), not through File.chunks(), so the failing chunks() the test "
    "installs is never called. An error raised while reading does propagate and stores nothing "
    "(tests/backends/test_faults.py)."
)
_ABSOLUTE_NAMES = (
    "Names are keys, and a key is relative: an absolute path is refused with "
    "SuspiciousFileOperation even when it lies inside MEDIA_ROOT (docs 'Safety'), where "
    "FileSystemStorage.delete() accepts it."
)
_EXACT_NAME_NOT_SHORTENED = (
    "save(name, content, overwrite=True) stores at exactly `name`: a name longer than max_length "
    "is refused with SuspiciousFileOperation rather than shortened to another name "
    "('test_l.txt'), which would overwrite a file the caller never named."
)
_EMPTY_FILENAME_IS_FILE = (
    "get_valid_name() sanitises a client's filename, and one that sanitises to nothing ('..', "
    "'.', '', '???', '$.$.$') becomes 'file' (docs 'Safety', filenames) instead of "
    "raising, so generate_filename() does not raise for them. As keys such names are still "
    "refused: get_available_name() and save() raise SuspiciousFileOperation."
)
_REPLACED_FILE_DELETED = (
    "Once the transaction commits, a FileField's replaced file is deleted (docs 'Safety': "
    "Replacing a file never loses the live one); Django keeps it, so listdir() here shows only "
    "the new file."
)

DIFFERENCES: dict[str, str] = {
    **{
        f"{peer_class}.{test}": reason
        for peer_class in ("KeyedFileStorageTests", "KeyedOverwritingStorageTests")
        for test, reason in (
            ("test_base_url", _ABSOLUTE_URLS),
            ("test_file_url", _FILE_URL),
            ("test_setting_changed", _NO_ARGUMENTS),
            ("test_empty_location", _EMPTY_LOCATION),
            ("test_file_chunks_error", _READ_NOT_CHUNKS),
            ("test_delete_deletes_directories", _ABSOLUTE_NAMES),
        )
    },
    "KeyedOverwritingStorageTests.test_file_name_truncation": _EXACT_NAME_NOT_SHORTENED,
    "KeyedGenerateFilenameStorageTests.test_storage_dangerous_paths": _EMPTY_FILENAME_IS_FILE,
    "KeyedGenerateFilenameStorageTests.test_filefield_dangerous_filename": _EMPTY_FILENAME_IS_FILE,
    "KeyedFileFieldStorageTestsCommitted.test_files": _REPLACED_FILE_DELETED,
}
