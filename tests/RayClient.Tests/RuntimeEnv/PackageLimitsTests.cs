using System.IO.Compression;
using RayClient.Server.RuntimeEnv;

namespace RayClient.Tests.RuntimeEnvs;

/// <summary>What a hostile package can make the server write: bounded in bytes and entries.</summary>
public sealed class PackageLimitsTests : IDisposable
{
    private const string Uri = "gcs://_ray_pkg_00000000000000bb.zip";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task GetOrUnpackAsync_ZipBomb_IsRefusedAndNothingIsKept()
    {
        // 64 MiB of zeros deflate to about 64 KiB: over the 16 MiB limit by its real size.
        var zip = MakeZip(("bomb.bin", 64 << 20));
        Assert.True(zip.Length < 1 << 20);
        var cache = new PackageCache(_root, maxUnpackedBytes: 16 << 20);

        var error = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => cache.GetWorkingDirAsync(Uri, Fetch(zip), CancellationToken.None));

        Assert.Contains("zip bomb", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxPackageUnpackedSize", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(_root)); // neither the package nor a temporary folder
    }

    [Fact]
    public async Task GetOrUnpackAsync_ZipBombWithLyingSizes_WritesNoMoreThanTheArchiveDeclares()
    {
        // The headers claim 1 KiB; the entry inflates to 32 MiB. The declared sizes pass the limit,
        // and no more than they declare reaches the disk, so the limit on declared sizes bounds it.
        var zip = MakeZip(("liar.bin", 32 << 20));
        PatchUncompressedSizes(zip, 1024);
        var cache = new PackageCache(_root, maxUnpackedBytes: 8 << 20);

        var directory = await cache.GetWorkingDirAsync(Uri, Fetch(zip), CancellationToken.None);

        Assert.Equal(1024, new FileInfo(Path.Combine(directory, "liar.bin")).Length);
    }

    [Fact]
    public async Task GetOrUnpackAsync_TooManyEntries_IsRefused()
    {
        var zip = MakeZip([.. Enumerable.Range(0, 50).Select(i => ($"f{i}.txt", 1))]);
        var cache = new PackageCache(_root, maxEntries: 10);

        var error = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => cache.GetWorkingDirAsync(Uri, Fetch(zip), CancellationToken.None));

        Assert.Contains("50 entries", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(_root));
    }

    [Fact]
    public async Task GetOrUnpackAsync_WithinTheLimits_Unpacks()
    {
        var zip = MakeZip(("a.bin", 4 << 20), ("b.txt", 10));
        var cache = new PackageCache(_root, maxUnpackedBytes: (4 << 20) + 10, maxEntries: 2);

        var directory = await cache.GetWorkingDirAsync(Uri, Fetch(zip), CancellationToken.None);

        Assert.Equal(4 << 20, new FileInfo(Path.Combine(directory, "a.bin")).Length);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private static Func<string, CancellationToken, Task<byte[]?>> Fetch(byte[] zip) => (_, _) => Task.FromResult<byte[]?>(zip);

    private static byte[] MakeZip(params (string Name, int Size)[] entries)
    {
        using var memory = new MemoryStream();
        using (var archive = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            var zeros = new byte[1 << 20];
            foreach (var (name, size) in entries)
            {
                using var stream = archive.CreateEntry(name, CompressionLevel.SmallestSize).Open();
                for (var left = size; left > 0; left -= zeros.Length)
                {
                    stream.Write(zeros, 0, Math.Min(left, zeros.Length));
                }
            }
        }

        return memory.ToArray();
    }

    /// <summary>Rewrites every uncompressed size (local headers and central directory) to <paramref name="size"/>.</summary>
    private static void PatchUncompressedSizes(byte[] zip, int size)
    {
        for (var i = 0; i + 30 < zip.Length; i++)
        {
            var signature = BitConverter.ToUInt32(zip, i);
            if (signature == 0x04034b50)
            {
                BitConverter.TryWriteBytes(zip.AsSpan(i + 22), size);
            }
            else if (signature == 0x02014b50)
            {
                BitConverter.TryWriteBytes(zip.AsSpan(i + 24), size);
            }
        }
    }
}
