using System.Runtime;

namespace RayClient.Server.Storage;

/// <summary>
/// Gives memory the server freed back to the operating system in a bounded time. Large values
/// (KV values, objects) live on the large object heap or in pooled buffers; without a full,
/// compacting collection the runtime keeps their pages, so a 2 GiB KVPut followed by KVDel would
/// leave gigabytes resident. Once 64 MiB or more were freed, one aggressive gen-2 collection runs
/// a second later (it compacts the large object heap and decommits free regions); a second one a
/// minute after lets <see cref="System.Buffers.ArrayPool{T}.Shared"/> drop buffers idle since
/// (it trims on gen-2 collections what it held unused for 60 s). Small frees never collect.
/// </summary>
internal sealed class MemoryReclaimer : IDisposable
{
    /// <summary>Bytes freed before a collection is worth it.</summary>
    public const long Threshold = 64L * 1024 * 1024;

    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PoolTrimDelay = TimeSpan.FromSeconds(62);

    private readonly ITimer _soon;
    private readonly ITimer _poolTrim;
    private long _freed;
    private int _scheduled;
    private long _collections;
    private int _poolTrimArmed;

    public MemoryReclaimer(TimeProvider timeProvider)
    {
        _soon = timeProvider.CreateTimer(_ => Reclaim(followUp: true), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _poolTrim = timeProvider.CreateTimer(_ => Reclaim(followUp: false), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Collections run so far (tests check that large frees trigger one and small ones do not).</summary>
    public long Collections => Interlocked.Read(ref _collections);

    /// <summary>Notes <paramref name="bytes"/> freed; schedules a collection once enough were.</summary>
    public void OnFreed(long bytes)
    {
        if (bytes > 0 && Interlocked.Add(ref _freed, bytes) >= Threshold && Interlocked.Exchange(ref _scheduled, 1) == 0)
        {
            _soon.Change(Soon, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Notes a large pooled buffer given back to <see cref="System.Buffers.ArrayPool{T}.Shared"/>: no
    /// collection now (the buffer is reused by the next large value, which keeps puts fast), one a
    /// minute later so the pool can drop it if it stayed idle.
    /// </summary>
    public void OnPooledFreed(long bytes)
    {
        if (bytes >= Threshold && Interlocked.Exchange(ref _poolTrimArmed, 1) == 0)
        {
            _poolTrim.Change(PoolTrimDelay, Timeout.InfiniteTimeSpan);
        }
    }

    private void Reclaim(bool followUp)
    {
        Interlocked.Exchange(ref _freed, 0);
        Volatile.Write(ref _scheduled, 0);
        if (!followUp)
        {
            Volatile.Write(ref _poolTrimArmed, 0);
        }

        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Interlocked.Increment(ref _collections);
        if (followUp && Interlocked.Exchange(ref _poolTrimArmed, 1) == 0)
        {
            _poolTrim.Change(PoolTrimDelay, Timeout.InfiniteTimeSpan);
        }
    }

    public void Dispose()
    {
        _soon.Dispose();
        _poolTrim.Dispose();
    }
}
