using Google.Protobuf;
using Ray.Rpc;
using RayClient.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace RayClient.FunctionalTests;

/// <summary>Memory the server frees goes back to the operating system (measured on a real <c>rayclient start</c> process).</summary>
public sealed class ServerMemoryTests(ITestOutputHelper log)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task KVDel_OfALargeValue_ReturnsItsMemoryToTheOs()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var cli = await CliProcess.StartAsync();
        log.WriteLine($"started after {clock.Elapsed}");
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = cli.Address, ReconnectGracePeriod = TimeSpan.Zero });
        var before = cli.ResidentBytes();

        var value = new byte[192 * MiB];
        Array.Fill(value, (byte)7); // real pages, not zero pages
        try
        {
            await ray.Connection.Driver.KVPutAsync(new KVPutRequest { Key = ByteString.CopyFromUtf8("big"), Value = UnsafeByteOperations.UnsafeWrap(value), Overwrite = true }, ray.Connection.UnaryOptions(CancellationToken.None));
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException($"KVPut failed; exited: {cli.Process.HasExited}; output: {cli.Output}", ex);
        }

        var holding = cli.ResidentBytes();
        log.WriteLine($"put after {clock.Elapsed}");
        await ray.Connection.Driver.KVDelAsync(new KVDelRequest { Key = ByteString.CopyFromUtf8("big") }, ray.Connection.UnaryOptions(CancellationToken.None));

        // Within seconds: the server's collection runs a second after the free; Kestrel's buffers
        // beyond 32 MiB were dropped when the request ended.
        long after = 0;
        await Eventually.TrueAsync(() => (after = cli.ResidentBytes()) < before + (128 * MiB), "the deleted value's memory is back with the OS", TimeSpan.FromSeconds(20));
        log.WriteLine($"RSS of rayclient start: {before / MiB} MiB before, {holding / MiB} MiB holding a 192 MiB KV value, {after / MiB} MiB after KVDel");
        Assert.True(holding > before + (150 * MiB), $"the value was not resident: {holding / MiB} MiB vs {before / MiB} MiB");
    }
}
