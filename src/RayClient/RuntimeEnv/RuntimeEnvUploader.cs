using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace RayClient.Packaging;

/// <summary>
/// Uploads the local parts of a job's runtime env before Init, as Ray's client does
/// (ray:python/ray/util/client/worker.py :: _server_init; working_dir.py ::
/// upload_working_dir_if_needed; py_modules.py :: upload_py_modules_if_needed;
/// packaging.py :: upload_package_if_needed), and returns the env to send: URIs instead of local
/// paths, <c>excludes</c> dropped.
/// </summary>
internal static class RuntimeEnvUploader
{
    // Per store (one per connection) so that two clusters never share what "is uploaded" means.
    private static readonly ConditionalWeakTable<IRuntimeEnvPackageStore, ConcurrentDictionary<string, Lazy<Task>>> s_uploaded = new();

    /// <summary>
    /// Validates <paramref name="env"/>, then uploads every local <c>py_modules</c> entry (in order)
    /// and then a local <c>working_dir</c>. URIs pass through untouched. For a local directory or
    /// <c>.py</c> module: pin the URI, stop if the cluster has it, else zip and put. A local
    /// <c>.zip</c> working_dir is put as is; a local <c>.whl</c> is put unless it exists.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">
    /// The env is invalid, a package is too large (nothing is uploaded for it) or the upload failed;
    /// connection failures surface as <see cref="RayConnectionException"/>.
    /// </exception>
    public static async Task<RuntimeEnv> UploadLocalPackagesAsync(
        RuntimeEnv env,
        IRuntimeEnvPackageStore store,
        UploadOptions options,
        IProgress<UploadProgress>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var validated = env.Validate();
        if (options.PinExpirationSeconds < 0)
        {
            throw new RayRuntimeEnvException(
                $"The pin expiration (RAY_RUNTIME_ENV_TEMPORARY_REFERENCE_EXPIRATION_S) must be >= 0, got {options.PinExpirationSeconds}.");
        }

        var excludes = validated.Excludes ?? [];
        var context = new UploadContext(store, options, progress);

        List<string>? modules = null;
        if (validated.PyModules is not null)
        {
            modules = new List<string>(validated.PyModules.Count);
            foreach (var module in validated.PyModules)
            {
                modules.Add(RuntimeEnvUris.IsUri(module)
                    ? module
                    : await UploadPyModuleAsync(module, excludes, context, cancellationToken).ConfigureAwait(false));
            }
        }

        var workingDir = validated.WorkingDir;
        if (workingDir is not null && !RuntimeEnvUris.IsUri(workingDir))
        {
            workingDir = await UploadWorkingDirAsync(workingDir, excludes, context, cancellationToken).ConfigureAwait(false);
        }

        return validated.WithUploadedPackages(workingDir, modules).EnsureNoLocalPaths();
    }

    private static async Task<string> UploadWorkingDirAsync(string path, IReadOnlyList<string> excludes, UploadContext context, CancellationToken cancellationToken)
    {
        const string field = "working_dir";
        return await WrapFailuresAsync(field, path, async () =>
        {
            if (Directory.Exists(path))
            {
                return await UploadDirectoryAsync(field, path, excludes, includeParentDir: false, context.Options.Packaging, context, cancellationToken)
                    .ConfigureAwait(false);
            }

            // A local .zip is uploaded as is: no pin, no existence check, excludes ignored (working_dir.py).
            context.Report(field, path, string.Empty, UploadStage.Hashing, 0);
            var uri = await Task.Run(() => Packaging.GetUriForZipFile(path), cancellationToken).ConfigureAwait(false);
            await OncePerStoreAsync(uri, field, path, context, async ct =>
            {
                var bytes = await ReadPackageFileAsync(path, context.Options.Packaging, ct).ConfigureAwait(false);
                await PutAsync(field, path, uri, bytes, context, ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            return uri;
        }).ConfigureAwait(false);
    }

    private static async Task<string> UploadPyModuleAsync(string path, IReadOnlyList<string> excludes, UploadContext context, CancellationToken cancellationToken)
    {
        const string field = "py_modules";
        return await WrapFailuresAsync(field, path, async () =>
        {
            // Ray's default excludes are documented for working_dir only (ray-client-protocol.md §8.4).
            var packaging = context.Options.Packaging with { DefaultExcludes = [] };
            if (Directory.Exists(path))
            {
                return await UploadDirectoryAsync(field, path, excludes, includeParentDir: true, packaging, context, cancellationToken).ConfigureAwait(false);
            }

            if (Path.GetExtension(path) == ".py")
            {
                context.Report(field, path, string.Empty, UploadStage.Hashing, 0);
                var pyUri = await Task.Run(() => Packaging.GetUriForPyFile(path), cancellationToken).ConfigureAwait(false);
                await OncePerStoreAsync(pyUri, field, path, context,
                    ct => PinCheckZipPutAsync(field, path, pyUri, excludes, includeParentDir: false, packaging, context, ct), cancellationToken).ConfigureAwait(false);
                return pyUri;
            }

            // A wheel's file name pins name and version; it is put as is unless present (no pin).
            var uri = Packaging.GetUriForWheel(path);
            await OncePerStoreAsync(uri, field, path, context, async ct =>
            {
                if (await context.Store.ExistsAsync(uri, ct).ConfigureAwait(false))
                {
                    Present(field, path, uri, context);
                    return;
                }

                var bytes = await ReadPackageFileAsync(path, packaging, ct).ConfigureAwait(false);
                await PutAsync(field, path, uri, bytes, context, ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            return uri;
        }).ConfigureAwait(false);
    }

    private static async Task<string> UploadDirectoryAsync(
        string field,
        string path,
        IReadOnlyList<string> excludes,
        bool includeParentDir,
        PackagingOptions packaging,
        UploadContext context,
        CancellationToken cancellationToken)
    {
        context.Report(field, path, string.Empty, UploadStage.Hashing, 0);
        var uri = await Task.Run(() => Packaging.GetUriForDirectory(path, excludes, packaging, cancellationToken), cancellationToken).ConfigureAwait(false);
        await OncePerStoreAsync(uri, field, path, context,
            ct => PinCheckZipPutAsync(field, path, uri, excludes, includeParentDir, packaging, context, ct), cancellationToken).ConfigureAwait(false);
        return uri;
    }

    /// <summary>Ray's <c>upload_package_if_needed</c>.</summary>
    private static async Task PinCheckZipPutAsync(
        string field,
        string path,
        string uri,
        IReadOnlyList<string> excludes,
        bool includeParentDir,
        PackagingOptions packaging,
        UploadContext context,
        CancellationToken cancellationToken)
    {
        if (context.Options.PinExpirationSeconds > 0)
        {
            await context.Store.PinAsync(uri, context.Options.PinExpirationSeconds, cancellationToken).ConfigureAwait(false);
        }

        if (await context.Store.ExistsAsync(uri, cancellationToken).ConfigureAwait(false))
        {
            Present(field, path, uri, context);
            return;
        }

        // Zip into a temporary file first (as Ray does): the size is known before any byte is sent,
        // and an oversized package is refused without holding it in memory.
        var tempPath = Path.Combine(context.Options.TempDirectory ?? Path.GetTempPath(), $"rayclient_{Guid.NewGuid():N}.zip");
        byte[] bytes;
        var temp = new FileStream(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 81920, FileOptions.DeleteOnClose);
        await using (temp.ConfigureAwait(false))
        {
            var zipProgress = new ZipProgress(context, field, path, uri);
            var result = await Task.Run(
                () => Packaging.CreateZip(path, excludes, temp, includeParentDir, packaging, zipProgress, cancellationToken),
                cancellationToken).ConfigureAwait(false);
            foreach (var warning in result.Warnings)
            {
                RuntimeEnvLog.LargeFile(context.Options.Logger, warning);
            }

            if (temp.Length >= packaging.MaxPackageSizeBytes)
            {
                throw Packaging.TooLarge(temp.Length, packaging.MaxPackageSizeBytes, atLeast: false);
            }

            bytes = new byte[temp.Length];
            temp.Position = 0;
            await temp.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        }

        await PutAsync(field, path, uri, bytes, context, cancellationToken).ConfigureAwait(false);
    }

    private static async Task PutAsync(string field, string path, string uri, byte[] bytes, UploadContext context, CancellationToken cancellationToken)
    {
        context.Report(field, path, uri, UploadStage.Uploading, bytes.Length);
        await context.Store.PutAsync(uri, bytes, cancellationToken).ConfigureAwait(false);
        RuntimeEnvLog.PackageUploaded(context.Options.Logger, uri, bytes.Length, field, path);
        context.Report(field, path, uri, UploadStage.Uploaded, bytes.Length);
    }

    private static void Present(string field, string path, string uri, UploadContext context)
    {
        RuntimeEnvLog.PackagePresent(context.Options.Logger, uri, field, path);
        context.Report(field, path, uri, UploadStage.AlreadyPresent, 0);
    }

    private static async Task<byte[]> ReadPackageFileAsync(string path, PackagingOptions packaging, CancellationToken cancellationToken)
    {
        var length = new FileInfo(path).Length;
        if (length >= packaging.MaxPackageSizeBytes)
        {
            throw Packaging.TooLarge(length, packaging.MaxPackageSizeBytes, atLeast: false);
        }

        return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs <paramref name="upload"/> once per (store, URI) in this process; concurrent callers
    /// share the run, a failed or cancelled run is forgotten so that the next call tries again.
    /// </summary>
    private static async Task OncePerStoreAsync(
        string uri,
        string field,
        string path,
        UploadContext context,
        Func<CancellationToken, Task> upload,
        CancellationToken cancellationToken)
    {
        if (!context.Options.UseProcessCache)
        {
            await upload(cancellationToken).ConfigureAwait(false);
            return;
        }

        var uploads = s_uploaded.GetValue(context.Store, _ => new ConcurrentDictionary<string, Lazy<Task>>(StringComparer.Ordinal));
        while (true)
        {
            var mine = new Lazy<Task>(() => upload(cancellationToken));
            var shared = uploads.GetOrAdd(uri, mine);
            var task = shared.Value;
            try
            {
                await task.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (!ReferenceEquals(shared, mine))
                {
                    Present(field, path, uri, context);
                }

                return;
            }
            catch (Exception) when (task.IsFaulted || task.IsCanceled)
            {
                uploads.TryRemove(KeyValuePair.Create(uri, shared));
                if (!task.IsCanceled || cancellationToken.IsCancellationRequested || ReferenceEquals(shared, mine))
                {
                    throw;
                }

                // Another caller's run was cancelled, not ours: run it ourselves.
            }
        }
    }

    /// <summary>Ray wraps upload failures as "Failed to upload …" (a RuntimeEnvSetupError); connection errors stay as they are.</summary>
    private static async Task<string> WrapFailuresAsync(string field, string path, Func<Task<string>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not RayConnectionException)
        {
            throw new RayRuntimeEnvException($"Failed to upload {field} {path} to the Ray cluster: {e.Message}", e);
        }
    }

    private sealed class UploadContext(IRuntimeEnvPackageStore store, UploadOptions options, IProgress<UploadProgress>? progress)
    {
        public IRuntimeEnvPackageStore Store { get; } = store;

        public UploadOptions Options { get; } = options;

        public void Report(string field, string path, string uri, UploadStage stage, long bytes) =>
            progress?.Report(new UploadProgress(field, path, uri, stage, bytes));
    }

    private sealed class ZipProgress(UploadContext context, string field, string path, string uri) : IProgress<long>
    {
        public void Report(long value) => context.Report(field, path, uri, UploadStage.Zipping, value);
    }
}
