using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text;

namespace RayClient.Server.RuntimeEnv;

/// <summary>
/// The server's copy of uploaded runtime-env packages: each <c>gcs://</c> package is fetched from
/// the KV store and unpacked once into <c>&lt;root&gt;/&lt;package name without .zip&gt;/</c>, as Ray's
/// agent does (ray:python/ray/_private/runtime_env/packaging.py :: download_and_unpack_package,
/// unzip_package with remove_top_level_directory=False).
/// </summary>
/// <remarks>
/// Safe under concurrency: requests in this process share one unpack, and each unpack goes to a
/// private temporary folder that is renamed into place, so another process (or a crash half way)
/// never exposes a partial directory. Entries that would land outside the target (zip-slip:
/// <c>../</c>, absolute names) are refused.
/// </remarks>
internal sealed class PackageCache
{
    private readonly string _root;
    private readonly long _maxUnpackedBytes;
    private readonly int _maxEntries;
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _unpacking = new(StringComparer.Ordinal);

    /// <summary>Creates a cache under <paramref name="rootDirectory"/> (created when missing).</summary>
    /// <param name="rootDirectory">Where packages are unpacked.</param>
    /// <param name="maxUnpackedBytes">The most bytes one package may unpack to (zip bombs are refused).</param>
    /// <param name="maxEntries">The most entries one package may hold.</param>
    public PackageCache(string rootDirectory, long maxUnpackedBytes = long.MaxValue, int maxEntries = int.MaxValue)
    {
        ArgumentException.ThrowIfNullOrEmpty(rootDirectory);
        _root = Path.GetFullPath(rootDirectory);
        _maxUnpackedBytes = maxUnpackedBytes;
        _maxEntries = maxEntries;
        Directory.CreateDirectory(_root);
    }

    /// <summary>The cache folder.</summary>
    public string RootDirectory => _root;

    /// <summary>The directory a working_dir package is unpacked to (the worker's cwd and first sys.path entry).</summary>
    public Task<string> GetWorkingDirAsync(string uri, Func<string, CancellationToken, Task<byte[]?>> fetch, CancellationToken cancellationToken) =>
        GetOrUnpackAsync(uri, fetch, cancellationToken);

    /// <summary>
    /// The directory to put on <c>sys.path</c> for a py_modules package: the unpack directory
    /// itself, because the zip holds the module's own top folder (<c>mymod/__init__.py</c>) or a
    /// single <c>mod.py</c>. A pure-Python wheel is unpacked as is, which makes it importable too
    /// (Ray pip-installs wheels instead; wheels with compiled parts or data scripts are not supported).
    /// </summary>
    public Task<string> GetPyModuleSysPathAsync(string uri, Func<string, CancellationToken, Task<byte[]?>> fetch, CancellationToken cancellationToken) =>
        GetOrUnpackAsync(uri, fetch, cancellationToken);

    /// <summary>Fetches (when needed) and unpacks the package once; returns its directory.</summary>
    /// <param name="uri">A <c>gcs://</c> package URI.</param>
    /// <param name="fetch">Reads the package bytes from the KV store (key = URI); null when absent.</param>
    /// <param name="cancellationToken">Stops waiting; the shared unpack is abandoned only if it was started with this token.</param>
    /// <exception cref="RayRuntimeEnvException">Unknown URI form, missing package, bad archive or zip-slip entry.</exception>
    public async Task<string> GetOrUnpackAsync(string uri, Func<string, CancellationToken, Task<byte[]?>> fetch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentNullException.ThrowIfNull(fetch);
        var target = Path.Combine(_root, GetLocalDirectoryName(uri));
        if (Directory.Exists(target))
        {
            return target;
        }

        while (true)
        {
            var mine = new Lazy<Task<string>>(() => UnpackAsync(uri, target, fetch, cancellationToken));
            var shared = _unpacking.GetOrAdd(uri, mine);
            var task = shared.Value;
            try
            {
                return await task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (task.IsFaulted || task.IsCanceled)
            {
                _unpacking.TryRemove(KeyValuePair.Create(uri, shared));
                if (!task.IsCanceled || cancellationToken.IsCancellationRequested || ReferenceEquals(shared, mine))
                {
                    throw;
                }
            }
        }
    }

    /// <summary>
    /// The folder name for a <c>gcs://</c> URI: the package name without its <c>.zip</c>/<c>.whl</c>
    /// suffix (Ray's <c>pkg_file.with_suffix("")</c>), with characters outside <c>[A-Za-z0-9._-]</c> replaced by '_'.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">Not a single-segment <c>gcs://</c> URI.</exception>
    public static string GetLocalDirectoryName(string uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        const string scheme = "gcs://";
        if (!uri.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new RayRuntimeEnvException($"Only gcs:// packages can be unpacked by the local server, got '{uri}'.");
        }

        var name = uri[scheme.Length..];
        foreach (var suffix in (ReadOnlySpan<string>)[".zip", ".whl"])
        {
            if (name.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                name = name[..^suffix.Length];
                break;
            }
        }

        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || name.Trim('.').Length == 0)
        {
            throw new RayRuntimeEnvException($"Invalid package URI '{uri}'.");
        }

        var sanitized = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            sanitized.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_');
        }

        return sanitized.ToString();
    }

    private async Task<string> UnpackAsync(string uri, string target, Func<string, CancellationToken, Task<byte[]?>> fetch, CancellationToken cancellationToken)
    {
        if (Directory.Exists(target))
        {
            return target;
        }

        var bytes = await fetch(uri, cancellationToken).ConfigureAwait(false)
            ?? throw new RayRuntimeEnvException($"Failed to fetch URI {uri} from GCS: no such package.");

        var temp = Path.Combine(_root, $".tmp_{Path.GetFileName(target)}_{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            await Task.Run(() => Extract(bytes, temp, uri, _maxUnpackedBytes, _maxEntries, cancellationToken), cancellationToken).ConfigureAwait(false);
            try
            {
                Directory.Move(temp, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                // Another process unpacked the same package first; its copy is identical.
            }

            return target;
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
    }

    private static void Extract(byte[] bytes, string directory, string uri, long maxUnpackedBytes, int maxEntries, CancellationToken cancellationToken)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var rootWithSeparator = root + Path.DirectorySeparatorChar;
        try
        {
            using var archive = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read);
            if (archive.Entries.Count > maxEntries)
            {
                throw new RayRuntimeEnvException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"Package {uri} has {archive.Entries.Count} entries; this server unpacks at most {maxEntries} (LocalRayServerOptions.MaxPackageFiles, rayclient start --max-package-files). The package was not unpacked."));
            }

            // The sizes in the zip's directory can lie: they only refuse early; the bytes written are what counts.
            var declared = archive.Entries.Sum(e => e.Length);
            if (declared > maxUnpackedBytes)
            {
                throw UnpackedTooLarge(uri, declared, maxUnpackedBytes);
            }

            long written = 0;
            foreach (var entry in archive.Entries)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var name = entry.FullName;
                if (name.Length == 0 || Path.IsPathRooted(name) || name.StartsWith('/') || name.StartsWith('\\'))
                {
                    throw ZipSlip(uri, name);
                }

                var destination = Path.GetFullPath(Path.Combine(root, name));
                var isDirectory = name.EndsWith('/') || name.EndsWith('\\');
                var inside = destination.StartsWith(rootWithSeparator, StringComparison.Ordinal) ||
                             (isDirectory && Path.TrimEndingDirectorySeparator(destination) == root);
                if (!inside)
                {
                    throw ZipSlip(uri, name);
                }

                if (isDirectory)
                {
                    Directory.CreateDirectory(destination);
                    continue;
                }

                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                using var source = entry.Open();
                using var output = new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None);
                written = CopyBounded(source, output, written, maxUnpackedBytes, uri);
            }
        }
        catch (InvalidDataException e)
        {
            throw new RayRuntimeEnvException($"Package {uri} is not a valid zip archive: {e.Message}", e);
        }
    }

    /// <summary>Copies an entry, stopping as soon as the package's bytes so far pass the limit.</summary>
    private static long CopyBounded(Stream source, Stream output, long written, long maxUnpackedBytes, string uri)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            int read;
            while ((read = source.Read(buffer, 0, buffer.Length)) > 0)
            {
                written += read;
                if (written > maxUnpackedBytes)
                {
                    throw UnpackedTooLarge(uri, written, maxUnpackedBytes);
                }

                output.Write(buffer, 0, read);
            }

            return written;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static RayRuntimeEnvException UnpackedTooLarge(string uri, long size, long max) =>
        new(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Package {uri} unpacks to more than {max} bytes (at least {size}); this server refuses it as a possible zip bomb (LocalRayServerOptions.MaxPackageUnpackedSize, rayclient start --max-package-unpacked-size). The package was not unpacked."));

    private static RayRuntimeEnvException ZipSlip(string uri, string name) =>
        new($"Package {uri} has an entry that escapes its directory: '{name}'. The package was not unpacked.");
}
