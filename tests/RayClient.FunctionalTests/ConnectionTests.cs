using System.Net;
using System.Net.Sockets;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class ConnectionTests(ServerFixture fixture)
{
    [Fact]
    public async Task ConnectAsync_ReportsServerAndCluster()
    {
        await using var ray = await fixture.ConnectAsync(o => o.Namespace = "tests-ns");

        var nodes = await ray.GetNodesAsync();
        var total = await ray.GetClusterResourcesAsync();
        var context = await ray.GetRuntimeContextAsync();

        Assert.Equal(32, ray.ClientId.Length);
        Assert.True(RayVersions.IsSupported(ray.Server.RayVersion));
        Assert.Single(nodes);
        Assert.True(nodes[0].Alive);
        Assert.Equal(2, total["CPU"]);
        Assert.Equal(1, total["accelerator"]);
        Assert.Equal("tests-ns", context.Namespace);
        Assert.Equal(8, context.JobId.Length);
        Assert.Contains("gcs://_ray_pkg_", context.RuntimeEnvJson);
    }

    [Fact]
    public async Task ConnectAsync_NothingListening_ThrowsConnectionRefused()
    {
        var port = FreePort();

        var error = await Assert.ThrowsAsync<RayConnectionException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = $"ray://127.0.0.1:{port}", ConnectDeadline = TimeSpan.FromSeconds(2) }));

        Assert.Contains("connection refused", error.Message);
        Assert.Contains("connect deadline of 2 s", error.Message);
        Assert.True(error.IsTransient);
    }

    [Fact]
    public async Task ConnectAsync_ServerIsNotHttp2_ThrowsNotARayServer()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var serve = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            while (!serve.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(serve.Token);
                var stream = client.GetStream();
                var buffer = new byte[4096];
                _ = await stream.ReadAsync(buffer, serve.Token); // the client's HTTP/2 preface, as a real HTTP/1.1 server would read it
                await stream.WriteAsync("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), serve.Token);
                while (await stream.ReadAsync(buffer, serve.Token) > 0)
                {
                    // let the client close first, so it reads the answer rather than a reset
                }
            }
        });

        var error = await Assert.ThrowsAsync<RayNotARayServerException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = $"ray://127.0.0.1:{port}", ConnectionRetries = 1 }));

        Assert.Contains("not as a Ray client server", error.Message);
        Assert.False(error.IsTransient);
        await serve.CancelAsync();
    }

    [Fact]
    public async Task ConnectAsync_UnsupportedRayVersion_ThrowsNamingBothVersions()
    {
        await using var old = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, ReportedRayVersion = "1.13.0" });

        var error = await Assert.ThrowsAsync<RayVersionMismatchException>(() => RaySession.ConnectAsync(old.Address));

        Assert.Equal("1.13.0", error.ServerVersion);
        Assert.Contains("1.13.0", error.Message);
        Assert.Contains("Ray 2.0.0", error.Message);
        Assert.Contains("RAY_IGNORE_VERSION_MISMATCH", error.Message);
        await using var anyway = await RaySession.ConnectAsync(new RaySessionOptions { Address = old.Address, IgnoreVersionMismatch = true });
        Assert.Equal("1.13.0", anyway.Server.RayVersion);
    }

    [Fact]
    public async Task DisposeAsync_FreesTheSessionOnTheServerAtOnce()
    {
        var ray = await fixture.ConnectAsync();
        var clientId = ray.ClientId;
        Assert.Contains(fixture.Server.State.Sessions, s => s.ClientId == clientId);

        await ray.DisposeAsync();

        await Eventually.TrueAsync(() => fixture.Server.State.Sessions.All(s => s.ClientId != clientId), "the server dropped the session", TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => ray.PutAsync(1));
        await ray.DisposeAsync(); // idempotent
    }

    [Theory]
    [InlineData("ray://head", "head", 10001)]
    [InlineData("ray://head:1234", "head", 1234)]
    [InlineData("head:1234", "head", 1234)]
    [InlineData("ray://[::1]:9000", "::1", 9000)]
    [InlineData("ray://10.0.0.1:10001/?x=y", "10.0.0.1", 10001)]
    public void RayAddress_Parse_AcceptsRayForms(string text, string host, int port)
    {
        var address = RayAddress.Parse(text);

        Assert.Equal(host, address.Host);
        Assert.Equal(port, address.Port);
    }

    [Theory]
    [InlineData("http://head:8265", "HTTP address")]
    [InlineData("ray://head:99999", "not a TCP port")]
    [InlineData("grpc://head", "Unsupported address scheme")]
    [InlineData("ray://local", "local Ray cluster")]
    public void RayAddress_Parse_RejectsOthersWithAReason(string text, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => RayAddress.Parse(text));

        Assert.Contains(reason, error.Message);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
