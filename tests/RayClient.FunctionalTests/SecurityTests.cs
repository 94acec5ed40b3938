using System.Diagnostics;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>Ray's token authentication and TLS, on the embedded server and in the client, end to end over real sockets.</summary>
public sealed class SecurityTests : IClassFixture<SecurityTests.Certificates>
{
    private const string Token = "rayclient-test-token-4f1c9a";
    private readonly TestCertificates _certs;

    public SecurityTests(Certificates fixture) => _certs = fixture.Value;

    [Fact]
    public async Task Token_Accepted_SessionWorks()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = Token });

        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, AuthToken = Token });
        var stored = await ray.PutAsync("through an authenticated Datapath");

        Assert.True(server.RequiresToken);
        Assert.Equal("through an authenticated Datapath", await stored.GetAsync());
        Assert.Equal(1, (await ray.GetClusterResourcesAsync())["CPU"]);
    }

    [Fact]
    public async Task Token_Missing_RefusedWithAuthenticationException()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = Token });

        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<RayAuthenticationException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, ConnectionRetries = 10 }));

        Assert.False(error.IsTransient);
        Assert.Contains("no token was sent", error.Message);
        Assert.Contains("Invalid or missing authentication token", error.Message); // Ray's own status message
        Assert.Contains("RAY_AUTH_TOKEN", error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"gave up only after {watch.Elapsed}: refused credentials must not be retried");
    }

    [Fact]
    public async Task Token_Wrong_RefusedWithAuthenticationException()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = Token });

        var error = await Assert.ThrowsAsync<RayAuthenticationException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, AuthToken = "not-the-token", ConnectionRetries = 10 }));

        Assert.False(error.IsTransient);
        Assert.Contains("refused the authentication token", error.Message);
        Assert.DoesNotContain("not-the-token", error.ToString());
    }

    [Fact]
    public async Task Token_WrongOnOtherCalls_RefusedWithRaysStatus()
    {
        // Every service is guarded, not only PING: a raw gRPC call to the Datapath and KV without the token.
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, AuthToken = Token });
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        var driver = new Ray.Rpc.RayletDriver.RayletDriverClient(channel);

        var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () =>
            await driver.KVGetAsync(new Ray.Rpc.KVGetRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("k") },
                new Grpc.Core.Metadata { { "authorization", "Bearer wrong" } }));
        using var data = new Ray.Rpc.RayletDataStreamer.RayletDataStreamerClient(channel).Datapath(new Grpc.Core.Metadata { { "client_id", "00" } });
        var streamRefused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await data.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, refused.StatusCode);
        Assert.Equal("Invalid or missing authentication token", refused.Status.Detail);
        Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, streamRefused.StatusCode);
    }

    [Fact]
    public async Task Start_NonLoopbackWithoutToken_Refused()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            LocalRayServer.StartAsync(new LocalRayServerOptions { Host = "0.0.0.0", NumCpus = 1 }));

        Assert.Contains("--allow-unauthenticated-network-access", error.Message);
        Assert.Contains("RAY_AUTH_MODE=token", error.Message);

        await using (var withToken = await LocalRayServer.StartAsync(new LocalRayServerOptions { Host = "0.0.0.0", NumCpus = 1, AuthToken = Token }))
        {
            Assert.True(withToken.RequiresToken);
            await Assert.ThrowsAsync<RayAuthenticationException>(() =>
                RaySession.ConnectAsync(new RaySessionOptions { Address = $"ray://127.0.0.1:{withToken.Port}", ConnectionRetries = 10 }));
        }

        await using var optedOut = await LocalRayServer.StartAsync(new LocalRayServerOptions { Host = "0.0.0.0", NumCpus = 1, AllowUnauthenticatedNetworkAccess = true });
        Assert.False(optedOut.RequiresToken);
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = $"ray://127.0.0.1:{optedOut.Port}" });
        Assert.Equal(RayConnectionStatus.Connected, ray.ConnectionState.Status);
    }

    [Fact]
    public async Task Cli_StartOnAllInterfacesWithoutToken_PrintsOneErrorLine()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await RayClient.Cli.CliApp.RunAsync(["start", "--host", "0.0.0.0", "--port", "0"], output, error);

        Assert.Equal(1, exit);
        Assert.StartsWith("error: Refusing to listen on 0.0.0.0", error.ToString());
        Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Tls_PrivateCa_ClientWithTheCaConnects()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions
        {
            NumCpus = 1,
            TlsCertificateFile = _certs.ServerCert,
            TlsKeyFile = _certs.ServerKey,
        });

        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, TlsCaCertificateFile = _certs.CaCert });
        var stored = await ray.PutAsync(new byte[100_000]);

        Assert.True(server.UsesTls);
        Assert.Equal(100_000, (await stored.GetAsync()).Length);
    }

    [Fact]
    public async Task Dispose_TlsServer_DisposesItsCertificates()
    {
        var server = await StartMutualTlsServerAsync();
        var certificate = server.Security.Certificate!;
        var roots = server.Security.ClientRoots!.ToList();
        Assert.True(certificate.HasPrivateKey);
        Assert.NotEqual(IntPtr.Zero, certificate.Handle);

        await server.DisposeAsync();

        // A disposed X509Certificate2 has let go of its native handle (and of the private key).
        Assert.Equal(IntPtr.Zero, certificate.Handle);
        Assert.All(roots, root => Assert.Equal(IntPtr.Zero, root.Handle));
    }

    [Fact]
    public async Task Tls_ClientWithoutTheCa_FailsWithAuthenticationException()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions
        {
            NumCpus = 1,
            TlsCertificateFile = _certs.ServerCert,
            TlsKeyFile = _certs.ServerKey,
        });

        var error = await Assert.ThrowsAsync<RayAuthenticationException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, UseTls = true, ConnectionRetries = 10 }));

        Assert.False(error.IsTransient);
        Assert.Contains("TLS handshake failed", error.Message);
        Assert.Contains("RAY_TLS_CA_CERT", error.Message);
    }

    [Fact]
    public async Task Tls_PlainClient_ToldToUseTls()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions
        {
            NumCpus = 1,
            TlsCertificateFile = _certs.ServerCert,
            TlsKeyFile = _certs.ServerKey,
        });

        var error = await Assert.ThrowsAnyAsync<RayConnectionException>(() =>
            RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address, ConnectionRetries = 1 }));

        Assert.True(error.Message.Contains("UseTls", StringComparison.Ordinal), error.ToString());
    }

    [Fact]
    public async Task MutualTls_ClientCertificateFromTheCa_Connects()
    {
        await using var server = await StartMutualTlsServerAsync();

        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions
        {
            Address = server.Address,
            TlsCaCertificateFile = _certs.CaCert,
            TlsCertificateFile = _certs.ClientCert,
            TlsKeyFile = _certs.ClientKey,
        });

        Assert.Equal("mutual", await (await ray.PutAsync("mutual")).GetAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MutualTls_NoOrForeignClientCertificate_FailsWithAuthenticationException(bool foreign)
    {
        await using var server = await StartMutualTlsServerAsync();

        var options = new RaySessionOptions { Address = server.Address, TlsCaCertificateFile = _certs.CaCert, ConnectionRetries = 10 };
        if (foreign)
        {
            options.TlsCertificateFile = _certs.StrangerCert;
            options.TlsKeyFile = _certs.StrangerKey;
        }

        var error = await Assert.ThrowsAsync<RayAuthenticationException>(() => RaySession.ConnectAsync(options));

        Assert.False(error.IsTransient);
        Assert.Contains("client certificate", error.Message);
    }

    [Fact]
    public async Task RayEnvironment_ServerAndClientConfiguredLikeRay_TalkMutualTlsWithToken()
    {
        // Both sides configured only by Ray's variables, in child processes (the environment is per process):
        // `rayclient start` reads RAY_USE_TLS/RAY_TLS_*/RAY_AUTH_MODE/RAY_AUTH_TOKEN_PATH; `rayclient demo`
        // reads RAY_USE_TLS/RAY_TLS_*/RAY_AUTH_TOKEN and runs Ray's job example through the server.
        var tokenFile = Path.Combine(_certs.Directory, "auth_token");
        await File.WriteAllTextAsync(tokenFile, Token + "\n");
        var tls = new Dictionary<string, string>
        {
            ["RAY_USE_TLS"] = "1",
            ["RAY_TLS_SERVER_CERT"] = _certs.ServerCert,
            ["RAY_TLS_SERVER_KEY"] = _certs.ServerKey,
            ["RAY_TLS_CA_CERT"] = _certs.CaCert,
        };

        using var server = StartCli(["start", "--port", "0", "--dashboard-port", "0", "--num-cpus", "1"], new(tls) { ["RAY_AUTH_MODE"] = "token", ["RAY_AUTH_TOKEN_PATH"] = tokenFile });
        try
        {
            string? line;
            while ((line = await server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60))) is not null && !line.Contains("listening at", StringComparison.Ordinal))
            {
            }

            Assert.NotNull(line);
            Assert.Contains("(TLS), token required", line);
            var address = line[line.IndexOf("ray://", StringComparison.Ordinal)..].Split(' ')[0];

            using var demo = StartCli(["demo", "--address", address], new(tls) { ["RAY_AUTH_TOKEN"] = Token });
            var demoOutput = demo.StandardOutput.ReadToEndAsync();
            var demoError = demo.StandardError.ReadToEndAsync();
            await demo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            Assert.True(demo.ExitCode == 0, $"demo exit {demo.ExitCode}: {await demoError}");
            Assert.Contains("[10]", await demoOutput);

            var refused = await Assert.ThrowsAsync<RayAuthenticationException>(() => RaySession.ConnectAsync(new RaySessionOptions
            {
                Address = address,
                TlsCaCertificateFile = _certs.CaCert,
                TlsCertificateFile = _certs.ClientCert,
                TlsKeyFile = _certs.ClientKey,
            }));
            Assert.Contains("no token was sent", refused.Message);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    private Task<LocalRayServer> StartMutualTlsServerAsync() => LocalRayServer.StartAsync(new LocalRayServerOptions
    {
        NumCpus = 1,
        TlsCertificateFile = _certs.ServerCert,
        TlsKeyFile = _certs.ServerKey,
        TlsCaCertificateFile = _certs.CaCert,
    });

    private static Process StartCli(string[] args, Dictionary<string, string> environment)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(typeof(RayClient.Cli.CliApp).Assembly.Location);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var name in new[] { "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT" })
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return Process.Start(info)!;
    }

    public sealed class Certificates : IDisposable
    {
        public TestCertificates Value { get; } = TestCertificates.Create();

        public void Dispose() => Value.Dispose();
    }
}
