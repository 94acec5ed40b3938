using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using RayClient.Server;

namespace RayClient.Cli.Commands;

/// <summary>
/// The <c>rayclient start</c> flags for the server's limits, one per <see cref="LocalRayServerOptions"/>
/// limit. Sizes are bytes, with an optional K, M or G suffix (binary: 1K = 1024).
/// </summary>
internal sealed class ServerLimitOptions
{
    private readonly Option<int?> _maxGrace = new("--max-reconnect-grace-period")
    {
        Description = "Longest grace period in seconds a client may ask for; longer requests get this (default: 300).",
    };

    private readonly Option<long?> _maxKvValue = Size("--max-kv-value-size", "Largest KV value a KVPut may store (default: 512M, Ray's max_grpc_message_size).");
    private readonly Option<long?> _maxPendingPerSession = Size("--max-pending-upload-bytes-per-session", "Bytes one client's unfinished chunked uploads may hold (default: 2G).");
    private readonly Option<long?> _maxPending = Size("--max-pending-upload-bytes", "Bytes all clients' unfinished chunked uploads may hold together (default: 4G).");
    private readonly Option<long?> _objectStore = Size("--object-store-memory", "Bytes the objects in memory may take; beyond it puts fail with ObjectStoreFullError (default: 30% of memory, as Ray).");
    private readonly Option<long?> _maxUnpacked = Size("--max-package-unpacked-size", "Most bytes one runtime-env package may unpack to (default: 2G).");

    private readonly Option<int?> _maxFiles = new("--max-package-files")
    {
        Description = "Most entries one runtime-env package may hold (default: 100000).",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(_maxGrace);
        command.Options.Add(_maxKvValue);
        command.Options.Add(_maxPendingPerSession);
        command.Options.Add(_maxPending);
        command.Options.Add(_objectStore);
        command.Options.Add(_maxUnpacked);
        command.Options.Add(_maxFiles);
    }

    public void Apply(ParseResult parse, LocalRayServerOptions options)
    {
        if (parse.GetValue(_maxGrace) is { } grace)
        {
            options.MaxReconnectGracePeriod = TimeSpan.FromSeconds(grace);
        }

        if (parse.GetValue(_maxKvValue) is { } kv)
        {
            options.MaxKvValueSize = kv;
        }

        if (parse.GetValue(_maxPendingPerSession) is { } perSession)
        {
            options.MaxPendingUploadBytesPerSession = perSession;
        }

        if (parse.GetValue(_maxPending) is { } pending)
        {
            options.MaxPendingUploadBytes = pending;
        }

        if (parse.GetValue(_objectStore) is { } store)
        {
            options.ObjectStoreMemory = store;
        }

        if (parse.GetValue(_maxUnpacked) is { } unpacked)
        {
            options.MaxPackageUnpackedSize = unpacked;
        }

        if (parse.GetValue(_maxFiles) is { } files)
        {
            options.MaxPackageFiles = files;
        }
    }

    private static Option<long?> Size(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = ParseSize,
    };

    /// <summary>"1048576", "512K", "512M", "2G" (binary units); a clear parse error otherwise.</summary>
    internal static long? ParseSize(ArgumentResult result)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value.Trim() : string.Empty;
        long multiplier = 1;
        if (text.Length > 0 && char.ToUpperInvariant(text[^1]) is 'K' or 'M' or 'G')
        {
            multiplier = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, _ => 1L << 30 };
            text = text[..^1];
        }

        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value <= 0 || value > long.MaxValue / multiplier)
        {
            result.AddError($"{result.Argument.Name}: '{string.Join(' ', result.Tokens.Select(t => t.Value))}' is not a size: give bytes, or a number with K, M or G (for example 512M).");
            return null;
        }

        return value * multiplier;
    }
}
