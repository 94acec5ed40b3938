using System.IO.Compression;
using System.Text;
using RayClient.Packaging;
using RayClient.Server.RuntimeEnv;

namespace RayClient.Tests.RuntimeEnvs;

public sealed class PackageCacheTests
{
    [Fact]
    public async Task GetOrUnpackAsync_ConcurrentRequests_UnpackOnce()
    {
        using var source = new TempTree().File("main.py", "print(1)").File("pkg/data.txt", "d").Dir("empty");
        using var cacheRoot = new TempTree();
        var zip = Zip(source.Root, includeParentDir: false);
        var uri = Packaging.Packaging.GetUriForDirectory(source.Root, [], PackagingOptions.Default);
        var cache = new PackageCache(cacheRoot.Root);
        var fetches = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async Task<byte[]?> Fetch(string key, CancellationToken ct)
        {
            Interlocked.Increment(ref fetches);
            await gate.Task.WaitAsync(ct);
            return key == uri ? zip : null;
        }

        var requests = Enumerable.Range(0, 8).Select(_ => cache.GetWorkingDirAsync(uri, Fetch, CancellationToken.None)).ToList();
        gate.SetResult();
        var directories = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, fetches);
        Assert.All(directories, d => Assert.Equal(Path.Combine(cacheRoot.Root, uri["gcs://".Length..^".zip".Length]), d));
        Assert.Equal("print(1)", File.ReadAllText(Path.Combine(directories[0], "main.py")));
        Assert.Equal("d", File.ReadAllText(Path.Combine(directories[0], "pkg", "data.txt")));
        Assert.True(Directory.Exists(Path.Combine(directories[0], "empty")));
        Assert.Single(Directory.GetDirectories(cacheRoot.Root)); // no temporary folder left

        // A new cache over the same folder (another process) finds it without fetching.
        var again = await new PackageCache(cacheRoot.Root).GetWorkingDirAsync(uri, (_, _) => throw new InvalidOperationException("fetched"), CancellationToken.None);
        Assert.Equal(directories[0], again);
    }

    [Fact]
    public async Task GetPyModuleSysPathAsync_ModuleZip_ContainsModuleFolder()
    {
        using var source = new TempTree().File("mymod/__init__.py", "VALUE = 42\n");
        using var cacheRoot = new TempTree();
        var zip = Zip(source.Path("mymod"), includeParentDir: true);

        var sysPath = await new PackageCache(cacheRoot.Root).GetPyModuleSysPathAsync(
            "gcs://_ray_pkg_00000000000000ab.zip", (_, _) => Task.FromResult<byte[]?>(zip), CancellationToken.None);

        Assert.True(File.Exists(Path.Combine(sysPath, "mymod", "__init__.py")));
    }

    [Theory]
    [InlineData("../evil.txt")]
    [InlineData("a/../../evil.txt")]
    [InlineData("/etc/evil.txt")]
    public async Task GetOrUnpackAsync_ZipSlipEntry_IsRejected(string entryName)
    {
        using var cacheRoot = new TempTree();
        var zip = ZipWithEntry(entryName);
        var cache = new PackageCache(Path.Combine(cacheRoot.Root, "cache"));

        var e = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => cache.GetOrUnpackAsync(
            "gcs://_ray_pkg_00000000000000cd.zip", (_, _) => Task.FromResult<byte[]?>(zip), CancellationToken.None));

        Assert.Contains("escapes", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(cacheRoot.Root, "evil.txt")));
        Assert.Empty(Directory.GetFileSystemEntries(cache.RootDirectory));
    }

    [Fact]
    public async Task GetOrUnpackAsync_MissingPackage_ThrowsAndRetriesLater()
    {
        using var cacheRoot = new TempTree();
        var cache = new PackageCache(cacheRoot.Root);
        const string uri = "gcs://_ray_pkg_00000000000000ef.zip";

        await Assert.ThrowsAsync<RayRuntimeEnvException>(() => cache.GetOrUnpackAsync(uri, (_, _) => Task.FromResult<byte[]?>(null), CancellationToken.None));

        var zip = ZipWithEntry("ok.txt");
        var dir = await cache.GetOrUnpackAsync(uri, (_, _) => Task.FromResult<byte[]?>(zip), CancellationToken.None);
        Assert.True(File.Exists(Path.Combine(dir, "ok.txt")));
    }

    [Theory]
    [InlineData("gcs://_ray_pkg_0123456789abcdef.zip", "_ray_pkg_0123456789abcdef")]
    [InlineData("gcs://my_pkg-1.0-py3-none-any.whl", "my_pkg-1.0-py3-none-any")]
    public void GetLocalDirectoryName_GcsUri_StripsSuffix(string uri, string expected)
    {
        Assert.Equal(expected, PackageCache.GetLocalDirectoryName(uri));
    }

    [Theory]
    [InlineData("s3://bucket/x.zip")]
    [InlineData("gcs://../x.zip")]
    [InlineData("gcs://..")]
    public void GetLocalDirectoryName_BadUri_Throws(string uri)
    {
        Assert.Throws<RayRuntimeEnvException>(() => PackageCache.GetLocalDirectoryName(uri));
    }

    private static byte[] Zip(string path, bool includeParentDir)
    {
        using var stream = new MemoryStream();
        Packaging.Packaging.CreateZip(path, [], stream, includeParentDir, PackagingOptions.Default, null, CancellationToken.None);
        return stream.ToArray();
    }

    private static byte[] ZipWithEntry(string name)
    {
        using var stream = new MemoryStream();
        using (var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var entry = archive.CreateEntry(name).Open();
            entry.Write(Encoding.UTF8.GetBytes("payload"));
        }

        return stream.ToArray();
    }
}
