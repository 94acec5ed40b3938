using System.Diagnostics;
using System.Globalization;

namespace RayClient.Server;

/// <summary>
/// The default work directories of embedded servers: <c>{temp}/rayclient-server/{pid}-{guid}</c>,
/// each holding an exclusively locked <c>.owner</c> file while its server runs. A server that was
/// killed (SIGKILL, a crash) cannot delete its directory; the next server to start deletes every
/// directory whose process is gone or whose lock nobody holds (the kernel drops a dead process's
/// locks, so a reused pid does not keep a stale directory alive).
/// </summary>
internal sealed class WorkDirectory : IDisposable
{
    private const string LockFileName = ".owner";
    private readonly FileStream? _lock;

    private WorkDirectory(string path, FileStream? ownerLock)
    {
        Path = path;
        _lock = ownerLock;
    }

    /// <summary>The parent of every default work directory.</summary>
    public static string Root => System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rayclient-server");

    public string Path { get; }

    /// <summary>Creates this process's new work directory under <paramref name="root"/> and locks it.</summary>
    public static WorkDirectory CreateOwned(string root)
    {
        var path = System.IO.Path.Combine(root, string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId}-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(path);
        var ownerLock = new FileStream(System.IO.Path.Combine(path, LockFileName), FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        return new WorkDirectory(path, ownerLock);
    }

    /// <summary>A directory the user chose: never locked, swept or deleted by the server.</summary>
    public static WorkDirectory Borrowed(string path)
    {
        Directory.CreateDirectory(path);
        return new WorkDirectory(path, ownerLock: null);
    }

    public bool IsOwned => _lock is not null;

    /// <summary>
    /// Deletes the directories under <paramref name="root"/> left by servers that are gone; returns
    /// how many. Names that are not <c>{pid}-{guid}</c> are not ours to judge and stay.
    /// </summary>
    public static int SweepStale(string root)
    {
        if (!Directory.Exists(root))
        {
            return 0;
        }

        var swept = 0;
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var name = System.IO.Path.GetFileName(dir);
            var dash = name.IndexOf('-', StringComparison.Ordinal);
            if (dash <= 0 || !int.TryParse(name.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || !Guid.TryParseExact(name.AsSpan(dash + 1), "N", out _) || pid == Environment.ProcessId)
            {
                continue;
            }

            if (IsAlive(pid) && !IsUnlocked(dir))
            {
                continue;
            }

            try
            {
                Directory.Delete(dir, recursive: true);
                swept++;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return swept;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>True when the directory has an owner file that nobody holds (a pid reused by another process).</summary>
    private static bool IsUnlocked(string dir)
    {
        var file = System.IO.Path.Combine(dir, LockFileName);
        if (!File.Exists(file))
        {
            return false; // being created right now, or not a server's directory
        }

        try
        {
            using var probe = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Unlocks, and deletes the directory if the server created it.</summary>
    public void Dispose()
    {
        if (_lock is null)
        {
            return;
        }

        _lock.Dispose();
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
