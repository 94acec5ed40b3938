using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace RayClient.Server;

/// <summary>
/// Kestrel's buffer pool for the embedded server, with bounded retention. Kestrel's default pool
/// keeps every 4 KiB block it ever rented: one 384 MiB KVPut (a unary message is buffered whole)
/// left 384 MiB of pinned blocks resident for good. This pool keeps at most
/// <see cref="MaxIdleBytes"/> of idle blocks for reuse and drops the rest, which the next full
/// collection (see <see cref="Storage.MemoryReclaimer"/>) returns to the OS.
/// </summary>
internal sealed class BoundedMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 4096;

    /// <summary>Idle bytes kept for reuse: plenty for steady traffic of many streams.</summary>
    public const int MaxIdleBytes = 32 * 1024 * 1024;

    private const int MaxIdleBlocks = MaxIdleBytes / BlockSize;
    private readonly System.Collections.Concurrent.ConcurrentQueue<Block> _idle = new();
    private int _idleCount;

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks kept for reuse now.</summary>
    public int IdleBlocks => Volatile.Read(ref _idleCount);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_idle.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _idleCount);
            block.Reuse();
            return block;
        }

        return new Block(this);
    }

    private void Return(Block block)
    {
        if (Interlocked.Increment(ref _idleCount) <= MaxIdleBlocks)
        {
            _idle.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _idleCount); // dropped: the GC takes it
        }
    }

    protected override void Dispose(bool disposing)
    {
        while (_idle.TryDequeue(out _))
        {
        }
    }

    /// <summary>One pinned 4 KiB block (pinned, as Kestrel's own blocks, so socket I/O needs no pinning per call).</summary>
    private sealed class Block(BoundedMemoryPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        private int _returned;

        public Memory<byte> Memory => _array;

        public void Reuse() => Volatile.Write(ref _returned, 0);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0)
            {
                pool.Return(this);
            }
        }
    }
}

/// <summary>Makes Kestrel use <see cref="BoundedMemoryPool"/>.</summary>
internal sealed class BoundedMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new BoundedMemoryPool();
}
