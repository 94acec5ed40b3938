using System.Collections.Concurrent;
using System.IO.Compression;
using RayClient.Packaging;

namespace RayClient.Tests.RuntimeEnvs;

public sealed class RuntimeEnvUploaderTests
{
    private static UploadOptions Options(long? maxSize = null, int pin = 600) => new(_ => null)
    {
        Packaging = new PackagingOptions { MaxPackageSizeBytes = maxSize ?? PackagingOptions.DefaultMaxPackageSizeBytes },
        PinExpirationSeconds = pin,
        UseProcessCache = false,
    };

    [Fact]
    public async Task UploadLocalPackagesAsync_LocalWorkingDir_PinsChecksZipsAndPuts()
    {
        using var tree = new TempTree().File("main.py", "print(1)").File(".git/HEAD", "x").Dir("empty");
        var store = new FakeStore();
        var env = new RuntimeEnv { WorkingDir = tree.Root, Excludes = ["*.log"], EnvVars = new Dictionary<string, string> { ["A"] = "1" } };

        var uploaded = await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, Options(), null, CancellationToken.None);

        var uri = Packaging.Packaging.GetUriForDirectory(tree.Root, ["*.log"], PackagingOptions.Default);
        Assert.Equal(uri, uploaded.WorkingDir);
        Assert.Null(uploaded.Excludes);
        Assert.Equal("1", uploaded.EnvVars!["A"]);
        Assert.Equal([$"pin {uri} 600", $"exists {uri}", $"put {uri}"], store.Calls);
        Assert.Equal(["empty/", "main.py"], ZipNames(store.Puts[uri]));
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_PackageAlreadyOnCluster_DoesNotPut()
    {
        using var tree = new TempTree().File("main.py", "print(1)");
        var store = new FakeStore();
        var env = new RuntimeEnv { WorkingDir = tree.Root };
        var first = await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, Options(), null, CancellationToken.None);
        store.Calls.Clear();

        var second = await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, Options(), null, CancellationToken.None);

        Assert.Equal(first.WorkingDir, second.WorkingDir);
        Assert.DoesNotContain(store.Calls, c => c.StartsWith("put", StringComparison.Ordinal));
        Assert.Contains($"exists {first.WorkingDir}", store.Calls);
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_ProcessCache_SkipsEverythingForTheSameStore()
    {
        using var tree = new TempTree().File("main.py", Guid.NewGuid().ToString());
        var store = new FakeStore();
        var options = new UploadOptions(_ => null) { Packaging = new PackagingOptions() };
        var env = new RuntimeEnv { WorkingDir = tree.Root };

        await Task.WhenAll(
            RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, options, null, CancellationToken.None),
            RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, options, null, CancellationToken.None));
        await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, options, null, CancellationToken.None);

        Assert.Single(store.Calls, c => c.StartsWith("put", StringComparison.Ordinal));
        Assert.Single(store.Calls, c => c.StartsWith("exists", StringComparison.Ordinal));

        // Another store (another cluster) gets its own upload.
        var other = new FakeStore();
        await RuntimeEnvUploader.UploadLocalPackagesAsync(env, other, options, null, CancellationToken.None);
        Assert.Single(other.Calls, c => c.StartsWith("put", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_RemoteUris_PassThroughWithoutCalls()
    {
        var store = new FakeStore();
        var env = new RuntimeEnv
        {
            WorkingDir = "s3://bucket/code.zip",
            PyModules = ["gcs://_ray_pkg_0123456789abcdef.zip", "https://example.com/mod.whl"],
        };

        var uploaded = await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, Options(), null, CancellationToken.None);

        Assert.Equal("s3://bucket/code.zip", uploaded.WorkingDir);
        Assert.Equal(env.PyModules, uploaded.PyModules);
        Assert.Empty(store.Calls);
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_OversizedPackage_ThrowsAndDoesNotPut()
    {
        using var tree = new TempTree().Bytes("big.bin", new byte[64 * 1024]);
        var store = new FakeStore();

        var e = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => RuntimeEnvUploader.UploadLocalPackagesAsync(
            new RuntimeEnv { WorkingDir = tree.Root }, store, Options(maxSize: 32 * 1024), null, CancellationToken.None));

        Assert.Contains("working_dir", e.Message, StringComparison.Ordinal);
        Assert.Contains("exceeds the maximum size of 0.03MiB", e.Message, StringComparison.Ordinal);
        Assert.Empty(store.Puts);
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_PyModulesThenWorkingDir_InOrder()
    {
        using var tree = new TempTree()
            .File("mymod/__init__.py", "x = 1\n")
            .File("single.py", "y = 2\n")
            .Bytes("dist/pkg-1.0-py3-none-any.whl", [1, 2, 3])
            .File("wd/run.py", "run");
        var store = new FakeStore();
        var env = new RuntimeEnv
        {
            WorkingDir = tree.Path("wd"),
            PyModules = [tree.Path("mymod"), tree.Path("single.py"), tree.Path("dist/pkg-1.0-py3-none-any.whl")],
        };

        var uploaded = await RuntimeEnvUploader.UploadLocalPackagesAsync(env, store, Options(pin: 0), null, CancellationToken.None);

        var modules = uploaded.PyModules!;
        Assert.Equal(Packaging.Packaging.GetUriForPyFile(tree.Path("single.py")), modules[1]);
        Assert.Equal("gcs://pkg-1.0-py3-none-any.whl", modules[2]);
        Assert.Equal(["mymod/__init__.py"], ZipNames(store.Puts[modules[0]]));
        Assert.Equal(["single.py"], ZipNames(store.Puts[modules[1]]));
        Assert.Equal([1, 2, 3], store.Puts[modules[2]]);
        Assert.Equal(["run.py"], ZipNames(store.Puts[uploaded.WorkingDir!]));
        Assert.DoesNotContain(store.Calls, c => c.StartsWith("pin", StringComparison.Ordinal));
        Assert.Equal([modules[0], modules[1], modules[2], uploaded.WorkingDir], store.Calls.Where(c => c.StartsWith("put", StringComparison.Ordinal)).Select(c => c[4..]));
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_LocalZipWorkingDir_PutsBytesAsIs()
    {
        using var tree = new TempTree().Bytes("code.zip", [9, 8, 7]);
        var store = new FakeStore();

        var uploaded = await RuntimeEnvUploader.UploadLocalPackagesAsync(
            new RuntimeEnv { WorkingDir = tree.Path("code.zip") }, store, Options(), null, CancellationToken.None);

        Assert.Equal(Packaging.Packaging.GetUriForZipFile(tree.Path("code.zip")), uploaded.WorkingDir);
        Assert.Equal([$"put {uploaded.WorkingDir}"], store.Calls);
        Assert.Equal([9, 8, 7], store.Puts[uploaded.WorkingDir!]);
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_NegativePin_Throws()
    {
        using var tree = new TempTree().File("a.py", "a");

        await Assert.ThrowsAsync<RayRuntimeEnvException>(() => RuntimeEnvUploader.UploadLocalPackagesAsync(
            new RuntimeEnv { WorkingDir = tree.Root }, new FakeStore(), Options(pin: -1), null, CancellationToken.None));
    }

    [Fact]
    public void UploadOptions_Environment_IsHonoured()
    {
        var env = new Dictionary<string, string>
        {
            ["RAY_RUNTIME_ENV_TEMPORARY_REFERENCE_EXPIRATION_S"] = "0",
            ["RAY_RUNTIME_ENV_IGNORE_GITIGNORE"] = "1",
            ["RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES"] = "",
        };

        var options = new UploadOptions(name => env.GetValueOrDefault(name));

        Assert.Equal(0, options.PinExpirationSeconds);
        Assert.False(options.Packaging.IncludeGitignore);
        Assert.Empty(options.Packaging.DefaultExcludes);
        Assert.Equal(PackagingOptions.DefaultMaxPackageSizeBytes, options.Packaging.MaxPackageSizeBytes);
        Assert.Equal([".git", ".venv", "venv", "__pycache__"], new UploadOptions(_ => null).Packaging.DefaultExcludes);
    }

    [Fact]
    public async Task UploadLocalPackagesAsync_StoreFails_WrapsNamingTheField()
    {
        using var tree = new TempTree().File("a.py", "a");
        var store = new FakeStore { FailPut = true };

        var e = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => RuntimeEnvUploader.UploadLocalPackagesAsync(
            new RuntimeEnv { WorkingDir = tree.Root }, store, Options(), null, CancellationToken.None));

        Assert.Contains("Failed to upload working_dir", e.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(e.InnerException);
    }

    private static List<string> ZipNames(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal).ToList();
    }

    private sealed class FakeStore : IRuntimeEnvPackageStore
    {
        private readonly ConcurrentDictionary<string, byte[]> _stored = new(StringComparer.Ordinal);

        public List<string> Calls { get; } = [];

        public Dictionary<string, byte[]> Puts { get; } = new(StringComparer.Ordinal);

        public bool FailPut { get; init; }

        public Task PinAsync(string uri, int expirationSeconds, CancellationToken cancellationToken)
        {
            lock (Calls)
            {
                Calls.Add($"pin {uri} {expirationSeconds}");
            }

            return Task.CompletedTask;
        }

        public async Task<bool> ExistsAsync(string uri, CancellationToken cancellationToken)
        {
            await Task.Yield();
            lock (Calls)
            {
                Calls.Add($"exists {uri}");
            }

            return _stored.ContainsKey(uri);
        }

        public async Task PutAsync(string uri, ReadOnlyMemory<byte> zip, CancellationToken cancellationToken)
        {
            await Task.Yield();
            if (FailPut)
            {
                throw new IOException("disk full");
            }

            lock (Calls)
            {
                Calls.Add($"put {uri}");
                Puts[uri] = zip.ToArray();
            }

            _stored[uri] = zip.ToArray();
        }
    }
}
