using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace RayClient.Packaging;

/// <summary>
/// Content-addressed runtime-env packages, bit-compatible with Ray's Python client
/// (ray:python/ray/_private/runtime_env/packaging.py — <c>get_uri_for_directory</c>,
/// <c>_dir_travel</c>, <c>_zip_files</c>, <c>get_uri_for_package</c>, <c>get_uri_for_file</c>).
/// A directory hashed here gets the same <c>gcs://_ray_pkg_….zip</c> URI as from a Python client
/// of the newest Ray on the same OS, so both share the package cached on the cluster.
/// </summary>
internal static class Packaging
{
    /// <summary>Prefix of every uploaded package name (Ray's <c>RAY_PKG_PREFIX</c>).</summary>
    public const string PackagePrefix = "_ray_pkg_";

    /// <summary>The hash accumulator starts as the ASCII text "00000000", not as zero bytes.</summary>
    private static ReadOnlySpan<byte> InitialHash => "00000000"u8;

    private const int ReadBufferSize = 1024 * 1024;

    private static readonly EnumerationOptions s_listAll = new()
    {
        // The default options skip "hidden" entries, which on Unix means every dotfile.
        AttributesToSkip = 0,
        IgnoreInaccessible = false,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
    };

    /// <summary>
    /// The URI of a local directory: <c>gcs://_ray_pkg_</c> + 16 hex digits + <c>.zip</c>, where the
    /// digits are the 8-byte XOR, starting from "00000000", of SHA-1(relative path ‖ file content)
    /// over every path the traversal visits (spec §8.3). <see cref="PackagingOptions.DefaultExcludes"/>
    /// are put before <paramref name="excludes"/>, as Ray's working_dir upload does.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">The directory does not exist or cannot be read.</exception>
    public static string GetUriForDirectory(string directory, IReadOnlyList<string> excludes, PackagingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(excludes);
        ArgumentNullException.ThrowIfNull(options);
        var root = Path.GetFullPath(directory);
        if (!Directory.Exists(root))
        {
            throw new RayRuntimeEnvException($"directory {root} must be an existing directory");
        }

        var hash = InitialHash.ToArray();
        var buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        try
        {
            Traverse(root, CombineExcludes(options, excludes), options, visit =>
            {
                var digest = HashPath(visit.FullPath, ToOsSeparators(visit.RelativePath), visit.IsDirectory, buffer, cancellationToken);
                Xor(hash, digest);
            }, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return "gcs://" + PackagePrefix + Convert.ToHexStringLower(hash) + ".zip";
    }

    /// <summary>
    /// The URI of a single <c>.py</c> module file (newest Ray's <c>get_uri_for_file</c>): the file
    /// name and content hashed like one directory entry, XORed into "00000000".
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">The file does not exist.</exception>
    public static string GetUriForPyFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full) || Directory.Exists(full))
        {
            throw new RayRuntimeEnvException($"File {full} must be an existing file");
        }

        var hash = InitialHash.ToArray();
        var buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        try
        {
            Xor(hash, HashPath(full, Path.GetFileName(full), isDirectory: false, buffer, CancellationToken.None));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return "gcs://" + PackagePrefix + Convert.ToHexStringLower(hash) + ".zip";
    }

    /// <summary>The URI of a local <c>.zip</c> working_dir: <c>gcs://_ray_pkg_</c> + the 40-hex SHA-1 of its bytes + <c>.zip</c>.</summary>
    /// <exception cref="RayRuntimeEnvException">The file cannot be read.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "Content address shared with Ray's client, not a security use.")]
    public static string GetUriForZipFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = OpenRead(Path.GetFullPath(path));
            return "gcs://" + PackagePrefix + Convert.ToHexStringLower(SHA1.HashData(stream)) + ".zip";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RayRuntimeEnvException($"Cannot read package {path}: {e.Message}", e);
        }
    }

    /// <summary>The URI of a local wheel: <c>gcs://</c> + its file name (the name already pins package and version).</summary>
    public static string GetUriForWheel(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return "gcs://" + Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
    }

    /// <summary>
    /// Writes the package of <paramref name="path"/> (a directory, or a single <c>.py</c> file) to
    /// <paramref name="output"/> as a ZIP_STORED archive in Ray's layout (spec §8.5): every
    /// non-excluded file and every directory without any children (as <c>"dir/"</c>), '/'-separated
    /// names relative to the root, prefixed with the root directory's name when
    /// <paramref name="includeParentDir"/> (py_modules). Files are streamed, never loaded whole.
    /// </summary>
    /// <param name="path">The directory or <c>.py</c> file to pack.</param>
    /// <param name="excludes">User patterns; <see cref="PackagingOptions.DefaultExcludes"/> go before them.</param>
    /// <param name="output">Receives the archive; left open.</param>
    /// <param name="includeParentDir">Prefix every name with the directory's own name.</param>
    /// <param name="options">Ignore-file switches and size limits.</param>
    /// <param name="progress">Receives the number of file bytes packed so far.</param>
    /// <param name="cancellationToken">Stops packing.</param>
    /// <exception cref="RayRuntimeEnvException">
    /// The package reaches <see cref="PackagingOptions.MaxPackageSizeBytes"/> (packing stops at once;
    /// what was written to <paramref name="output"/> must be discarded) or a file cannot be read.
    /// </exception>
    public static PackageZipResult CreateZip(
        string path,
        IReadOnlyList<string> excludes,
        Stream output,
        bool includeParentDir,
        PackagingOptions options,
        IProgress<long>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(excludes);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);

        var root = Path.GetFullPath(path);
        var rootIsFile = !Directory.Exists(root);
        if (rootIsFile && !File.Exists(root))
        {
            throw new RayRuntimeEnvException($"{root} must be an existing directory or file");
        }

        var prefix = includeParentDir && !rootIsFile ? Path.GetFileName(Path.TrimEndingDirectorySeparator(root)) : null;
        var counter = new CountingStream(output);
        var builder = new ZipBuilder(counter, options, progress, cancellationToken);
        try
        {
            using (var archive = new ZipArchive(counter, ZipArchiveMode.Create, leaveOpen: true))
            {
                Traverse(root, CombineExcludes(options, excludes), options, visit =>
                {
                    var name = rootIsFile ? Path.GetFileName(root)
                        : prefix is null ? visit.RelativePath
                        : visit.RelativePath == "." ? prefix
                        : prefix + "/" + visit.RelativePath;
                    builder.Add(archive, visit, name);
                }, cancellationToken);
            }
        }
        finally
        {
            builder.Dispose();
        }

        if (counter.Length >= options.MaxPackageSizeBytes)
        {
            throw TooLarge(counter.Length, options.MaxPackageSizeBytes, atLeast: false);
        }

        return new PackageZipResult(counter.Length, builder.Files, builder.Directories, builder.Warnings);
    }

    /// <summary>Ray's message for an oversized package (<c>_store_package_in_gcs</c>), naming size and limit.</summary>
    internal static RayRuntimeEnvException TooLarge(long size, long limit, bool atLeast) =>
        new($"Package size ({(atLeast ? "at least " : string.Empty)}{MiB(size)}) exceeds the maximum size of {MiB(limit)}. " +
            "You can exclude large files using the 'excludes' option to the runtime_env or provide a remote URI of a zip file " +
            "using protocols such as 's3://', 'https://' and so on. Nothing was uploaded.");

    /// <summary>Ray's <c>_mib_string</c>: two decimals and "MiB".</summary>
    internal static string MiB(long bytes) =>
        (bytes / (1024.0 * 1024.0)).ToString("0.00", CultureInfo.InvariantCulture) + "MiB";

    /// <summary>One path the traversal visits: '/'-separated and relative to the root ("." for the root).</summary>
    internal readonly record struct PackageEntry(string FullPath, string RelativePath, bool IsDirectory);

    /// <summary>
    /// Ray's <c>_dir_travel</c>: visits the root, then every descendant depth-first, skipping
    /// (and not descending into) every path some active matcher excludes. A directory's
    /// <c>.gitignore</c>/<c>.rayignore</c> become active before that directory itself is tested,
    /// relative to it (so a pattern matching "." there excludes the directory), and stay active
    /// for its subtree only. Symbolic links are followed; a link loop is an error.
    /// </summary>
    internal static void Traverse(string root, IReadOnlyList<string> excludes, PackagingOptions options, Action<PackageEntry> handler, CancellationToken cancellationToken)
    {
        var matchers = new List<IgnoreMatcher>();
        var user = GitWildMatchSpec.FromLines(excludes, "runtime_env['excludes']");
        if (!user.IsEmpty)
        {
            matchers.Add(new IgnoreMatcher(".", user));
        }

        var ancestors = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            Visit(root, ".", RealPath(root), matchers, ancestors, options, handler, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RayRuntimeEnvException($"Cannot read {root}: {e.Message}", e);
        }
    }

    private static void Visit(
        string full,
        string relative,
        string realPath,
        List<IgnoreMatcher> matchers,
        HashSet<string> ancestors,
        PackagingOptions options,
        Action<PackageEntry> handler,
        CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var isDirectory = Directory.Exists(full);
        var pushed = 0;
        if (isDirectory)
        {
            if (options.IncludeGitignore && LoadIgnoreFile(full, relative, ".gitignore") is { } gitignore)
            {
                matchers.Add(gitignore);
                pushed++;
            }

            if (LoadIgnoreFile(full, relative, ".rayignore") is { } rayignore)
            {
                matchers.Add(rayignore);
                pushed++;
            }
        }

        try
        {
            foreach (var matcher in matchers)
            {
                if (matcher.Matches(relative))
                {
                    return;
                }
            }

            handler(new PackageEntry(full, relative, isDirectory));
            if (!isDirectory)
            {
                return;
            }

            if (!ancestors.Add(realPath))
            {
                throw new RayRuntimeEnvException($"Symbolic link loop at {full}: it leads back to {realPath}.");
            }

            try
            {
                var children = Directory.GetFileSystemEntries(full, "*", s_listAll);
                Array.Sort(children, StringComparer.Ordinal);
                foreach (var child in children)
                {
                    var name = Path.GetFileName(child);
                    var childRelative = relative == "." ? name : relative + "/" + name;
                    var childReal = IsLink(child) ? RealPath(child) : Path.Combine(realPath, name);
                    Visit(child, childRelative, childReal, matchers, ancestors, options, handler, cancellationToken);
                }
            }
            finally
            {
                ancestors.Remove(realPath);
            }
        }
        finally
        {
            matchers.RemoveRange(matchers.Count - pushed, pushed);
        }
    }

    private static IgnoreMatcher? LoadIgnoreFile(string directory, string relative, string fileName)
    {
        var file = Path.Combine(directory, fileName);
        if (!File.Exists(file) || Directory.Exists(file))
        {
            return null;
        }

        // Ray reads it with open("r").readlines(): universal newlines, UTF-8 (a BOM stays part of
        // the first pattern), each line stripped by pathspec.
        var text = Encoding.UTF8.GetString(File.ReadAllBytes(file));
        var lines = text.Split(["\r\n", "\n", "\r"], StringSplitOptions.None);
        var spec = GitWildMatchSpec.FromLines(lines, file);
        return spec.IsEmpty ? null : new IgnoreMatcher(relative, spec);
    }

    private static List<string> CombineExcludes(PackagingOptions options, IReadOnlyList<string> excludes)
    {
        var all = new List<string>(options.DefaultExcludes.Count + excludes.Count);
        all.AddRange(options.DefaultExcludes);
        all.AddRange(excludes);
        return all;
    }

    private static byte[] HashPath(string full, string relative, bool isDirectory, byte[] buffer, CancellationToken cancellationToken)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.UTF8.GetBytes(relative));
        if (!isDirectory)
        {
            FileStream? stream = null;
            try
            {
                stream = OpenRead(full);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Ray hashes only the path of a file it cannot open (e.g. a broken link).
            }

            if (stream is not null)
            {
                using (stream)
                {
                    int read;
                    while ((read = stream.Read(buffer, 0, ReadBufferSize)) > 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        sha1.AppendData(buffer, 0, read);
                    }
                }
            }
        }

        return sha1.GetHashAndReset();
    }

    /// <summary>Ray's <c>_xor_bytes</c>: bytewise XOR over the shorter length (the 8-byte accumulator).</summary>
    private static void Xor(byte[] accumulator, byte[] digest)
    {
        for (var i = 0; i < accumulator.Length && i < digest.Length; i++)
        {
            accumulator[i] ^= digest[i];
        }
    }

    /// <summary>Python's <c>str(relative path)</c> uses the OS separator, so the hash does too.</summary>
    private static string ToOsSeparators(string relative) =>
        Path.DirectorySeparatorChar == '/' ? relative : relative.Replace('/', Path.DirectorySeparatorChar);

    private static FileStream OpenRead(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1, FileOptions.SequentialScan);

    private static bool HasAnyEntry(string directory) =>
        Directory.EnumerateFileSystemEntries(directory, "*", s_listAll).Any();

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    private static bool IsRegularFileTarget(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is null)
        {
            return info.Exists;
        }

        return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true } target && target is FileInfo;
    }

    private static string RealPath(string path)
    {
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
        {
            return Path.GetFullPath(target.FullName);
        }

        return Path.GetFullPath(path);
    }

    /// <summary>Python's <c>ZipFile(strict_timestamps=False)</c> clamps to the DOS date range.</summary>
    private static DateTimeOffset ClampZipTime(DateTime localTime)
    {
        var min = new DateTime(1980, 1, 1, 0, 0, 0, DateTimeKind.Local);
        var max = new DateTime(2107, 12, 31, 23, 59, 58, DateTimeKind.Local);
        var clamped = localTime < min ? min : localTime > max ? max : localTime;
        return new DateTimeOffset(DateTime.SpecifyKind(clamped, DateTimeKind.Unspecified), TimeSpan.Zero);
    }

    /// <summary>Python stores <c>st_mode &lt;&lt; 16</c> (plus the MS-DOS directory bit for directories).</summary>
    private static void SetUnixAttributes(ZipArchiveEntry entry, string path, bool directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = (int)File.GetUnixFileMode(path);
        entry.ExternalAttributes = directory
            ? (((0x4000 | mode) & 0xFFFF) << 16) | 0x10
            : ((0x8000 | mode) & 0xFFFF) << 16;
    }

    /// <summary>Adds visited paths to the archive as Python's <c>_zip_files</c> handler does.</summary>
    private sealed class ZipBuilder(CountingStream counter, PackagingOptions options, IProgress<long>? progress, CancellationToken cancellationToken)
        : IDisposable
    {
        private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        private long _packedBytes;

        public int Files { get; private set; }

        public int Directories { get; private set; }

        public List<string> Warnings { get; } = [];

        public void Add(ZipArchive archive, PackageEntry visit, string name)
        {
            if (visit.IsDirectory)
            {
                // Only directories without any children get an entry (excluded children count as children).
                if (!HasAnyEntry(visit.FullPath))
                {
                    var entry = archive.CreateEntry(name + "/", CompressionLevel.NoCompression);
                    entry.LastWriteTime = ClampZipTime(Directory.GetLastWriteTime(visit.FullPath));
                    SetUnixAttributes(entry, visit.FullPath, directory: true);
                    Directories++;
                }

                return;
            }

            if (!IsRegularFileTarget(visit.FullPath))
            {
                return; // broken link or special file: Python's is_file() is false, nothing is packed
            }

            try
            {
                var length = new FileInfo(visit.FullPath).Length;
                if (length >= options.FileSizeWarningBytes)
                {
                    Warnings.Add(
                        $"File {visit.FullPath} is very large ({MiB(length)}). Consider adding this file to the 'excludes' list to skip uploading it: " +
                        $"runtime_env={{\"excludes\": [\"{visit.RelativePath}\"]}}");
                }

                // Stored entries are at least as large as the file: refuse before copying it.
                if (counter.Length + length >= options.MaxPackageSizeBytes)
                {
                    throw TooLarge(counter.Length + length, options.MaxPackageSizeBytes, atLeast: true);
                }

                var entry = archive.CreateEntry(name, CompressionLevel.NoCompression);
                entry.LastWriteTime = ClampZipTime(File.GetLastWriteTime(visit.FullPath));
                SetUnixAttributes(entry, visit.FullPath, directory: false);
                using (var source = OpenRead(visit.FullPath))
                using (var target = entry.Open())
                {
                    int read;
                    while ((read = source.Read(_buffer, 0, ReadBufferSize)) > 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        target.Write(_buffer, 0, read);
                        _packedBytes += read;
                        progress?.Report(_packedBytes);
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RayRuntimeEnvException($"Cannot pack {visit.FullPath}: {e.Message}", e);
            }

            Files++;
            if (counter.Length >= options.MaxPackageSizeBytes)
            {
                throw TooLarge(counter.Length, options.MaxPackageSizeBytes, atLeast: true);
            }
        }

        public void Dispose() => ArrayPool<byte>.Shared.Return(_buffer);
    }

    /// <summary>A pattern list active in one directory's subtree, matched against paths relative to that directory.</summary>
    private sealed class IgnoreMatcher(string baseRelative, GitWildMatchSpec spec)
    {
        public bool Matches(string relative)
        {
            string local;
            if (baseRelative == ".")
            {
                local = relative;
            }
            else if (relative.Length == baseRelative.Length)
            {
                local = ".";
            }
            else
            {
                local = relative[(baseRelative.Length + 1)..];
            }

            return spec.Matches(local);
        }
    }

    /// <summary>Write-through stream that knows how far the archive has grown.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        private readonly long _start = inner.CanSeek ? inner.Position : 0;
        private long _written;
        private long _highWater;

        public override long Length => _highWater;

        public override bool CanRead => false;

        public override bool CanSeek => inner.CanSeek;

        public override bool CanWrite => true;

        public override long Position
        {
            get => inner.CanSeek ? inner.Position - _start : _written;
            set => inner.Position = value + _start;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            _written += buffer.Length;
            _highWater = Math.Max(_highWater, Position);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => origin switch
        {
            SeekOrigin.Begin => inner.Seek(offset + _start, SeekOrigin.Begin) - _start,
            _ => inner.Seek(offset, origin) - _start,
        };

        public override void SetLength(long value) => inner.SetLength(value + _start);
    }
}

/// <summary>What <see cref="Packaging.CreateZip"/> wrote.</summary>
/// <param name="SizeBytes">Size of the archive.</param>
/// <param name="FileCount">Files packed.</param>
/// <param name="EmptyDirectoryCount">Empty directories packed as <c>"dir/"</c> entries.</param>
/// <param name="Warnings">One message per file of 10 MiB or more (Ray logs these as warnings).</param>
internal sealed record PackageZipResult(long SizeBytes, int FileCount, int EmptyDirectoryCount, IReadOnlyList<string> Warnings);
