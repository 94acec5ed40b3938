namespace RayClient.Server.Storage;

/// <summary>Ray's internal KV store: byte keys and values per optional namespace (spec §9.4).</summary>
internal sealed class KvStore(MemoryReclaimer? reclaimer = null)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, SortedDictionary<string, byte[]>> _spaces = new(StringComparer.Ordinal);

    private static string Space(byte[]? ns) => ns is null ? string.Empty : Convert.ToHexString(ns);

    private static string Key(byte[] key) => Convert.ToHexString(key);

    private long _puts;

    /// <summary>KVPut calls so far (tests check that packages are uploaded once).</summary>
    public long PutCount => Interlocked.Read(ref _puts);

    public byte[]? Get(byte[] key, byte[]? ns)
    {
        lock (_lock)
        {
            return _spaces.TryGetValue(Space(ns), out var space) && space.TryGetValue(Key(key), out var value) ? value : null;
        }
    }

    public bool Exists(byte[] key, byte[]? ns) => Get(key, ns) is not null;

    /// <summary>Stores the value; returns whether the key existed before (whether or not it was overwritten).</summary>
    public bool Put(byte[] key, byte[] value, bool overwrite, byte[]? ns)
    {
        Interlocked.Increment(ref _puts);
        lock (_lock)
        {
            if (!_spaces.TryGetValue(Space(ns), out var space))
            {
                _spaces[Space(ns)] = space = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
            }

            var existed = space.TryGetValue(Key(key), out var old);
            if (!existed || overwrite)
            {
                space[Key(key)] = value;
                reclaimer?.OnFreed(old?.Length ?? 0);
            }

            return existed;
        }
    }

    public int Delete(byte[] key, bool byPrefix, byte[]? ns)
    {
        lock (_lock)
        {
            if (!_spaces.TryGetValue(Space(ns), out var space))
            {
                return 0;
            }

            if (!byPrefix)
            {
                if (!space.Remove(Key(key), out var removed))
                {
                    return 0;
                }

                reclaimer?.OnFreed(removed.Length);
                return 1;
            }

            var prefix = Key(key);
            var doomed = space.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            foreach (var k in doomed)
            {
                if (space.Remove(k, out var removed))
                {
                    reclaimer?.OnFreed(removed.Length);
                }
            }

            return doomed.Count;
        }
    }

    public List<byte[]> List(byte[] prefix, byte[]? ns)
    {
        lock (_lock)
        {
            if (!_spaces.TryGetValue(Space(ns), out var space))
            {
                return [];
            }

            var hexPrefix = Key(prefix);
            return space.Keys.Where(k => k.StartsWith(hexPrefix, StringComparison.Ordinal)).Select(Convert.FromHexString).ToList();
        }
    }
}
