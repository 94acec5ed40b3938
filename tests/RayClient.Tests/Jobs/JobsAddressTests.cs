using RayClient.Jobs;

namespace RayClient.Tests.Jobs;

public sealed class JobsAddressTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Theory]
    [InlineData("http://head:8265", "http://head:8265/")]
    [InlineData("https://head.example.com", "https://head.example.com/")]
    [InlineData("http://head:8265/", "http://head:8265/")]
    [InlineData("http://proxy/ray/dashboard/", "http://proxy/ray/dashboard")]
    [InlineData("10.0.0.5:8265", "http://10.0.0.5:8265/")]
    [InlineData("10.0.0.5:6379", "http://10.0.0.5:8265/")]
    [InlineData("head", "http://head:8265/")]
    [InlineData("auto", "http://127.0.0.1:8265/")]
    public void Resolve_Address_GivesTheDashboardUrl(string address, string expected)
    {
        var resolution = JobsAddress.Resolve(address, Env());

        Assert.Equal(expected, resolution.BaseUri.ToString());
        Assert.Equal("address", resolution.Source);
    }

    [Fact]
    public void Resolve_Nothing_UsesTheLocalDashboard()
    {
        var resolution = JobsAddress.Resolve(null, Env());

        Assert.Equal("http://127.0.0.1:8265/", resolution.BaseUri.ToString());
        Assert.Null(resolution.Warning);
    }

    [Fact]
    public void Resolve_RayApiServerAddress_BeatsRayAddressAndTheArgumentAsInRay()
    {
        var resolution = JobsAddress.Resolve("http://given:8265", Env(("RAY_API_SERVER_ADDRESS", "http://api:8265"), ("RAY_ADDRESS", "http://ray:8265")));

        Assert.Equal("http://api:8265/", resolution.BaseUri.ToString());
        Assert.Equal("RAY_API_SERVER_ADDRESS", resolution.Source);
        Assert.Contains("overrides the address given", resolution.Warning);
    }

    [Fact]
    public void Resolve_HttpRayAddress_BeatsTheArgumentAsInRay()
    {
        var resolution = JobsAddress.Resolve("http://given:8265", Env(("RAY_ADDRESS", "http://ray:8265")));

        Assert.Equal("http://ray:8265/", resolution.BaseUri.ToString());
        Assert.Equal("RAY_ADDRESS", resolution.Source);
    }

    [Fact]
    public void Resolve_GcsRayAddressInsideAJobAndAnArgument_KeepsTheArgument()
    {
        var resolution = JobsAddress.Resolve("http://given:8265", Env(("RAY_ADDRESS", "10.0.0.5:6379")));

        Assert.Equal("http://given:8265/", resolution.BaseUri.ToString());
        Assert.Contains("not a dashboard URL", resolution.Warning);
    }

    [Fact]
    public void Resolve_GcsRayAddressAlone_UsesTheDashboardOnThatHost()
    {
        var resolution = JobsAddress.Resolve(null, Env(("RAY_ADDRESS", "10.0.0.5:6379")));

        Assert.Equal("http://10.0.0.5:8265/", resolution.BaseUri.ToString());
        Assert.Contains("GCS address", resolution.Warning);
    }

    [Theory]
    [InlineData("ray://head:10001", "http://head:8265")]
    [InlineData("ray://10.1.2.3", "http://10.1.2.3:8265")]
    public void Resolve_RayClientAddress_IsRefusedNamingTheDashboardPort(string address, string suggestion)
    {
        var error = Assert.Throws<ArgumentException>(() => JobsAddress.Resolve(address, Env()));

        Assert.Contains("Ray Client address", error.Message);
        Assert.Contains(suggestion, error.Message);
    }

    [Fact]
    public void Resolve_RayClientAddressFromTheEnvironment_SaysWhereItCameFrom()
    {
        var error = Assert.Throws<ArgumentException>(() => JobsAddress.Resolve(null, Env(("RAY_ADDRESS", "ray://head:10001"))));

        Assert.Contains("from RAY_ADDRESS", error.Message);
    }

    [Theory]
    [InlineData("grpc://head:8265")]
    [InlineData("http://")]
    [InlineData("http://head:8265/?x=1")]
    public void Resolve_Malformed_Throws(string address)
    {
        Assert.Throws<ArgumentException>(() => JobsAddress.Resolve(address, Env()));
    }
}
