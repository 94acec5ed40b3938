namespace RayClient.Tests.Session;

public sealed class RayVersionsTests
{
    [Theory]
    [InlineData("2.0.0", true)]
    [InlineData("2.9.3", true)]
    [InlineData("2.10.0+local", true)]
    [InlineData("2.51.1", true)]
    [InlineData("3.0.0.dev0", true)]
    [InlineData("1.13.0", false)]
    [InlineData("3.1.0", false)]
    public void IsSupported_KnownVersions_MatchTheWindow(string version, bool supported)
    {
        Assert.Equal(supported, RayVersions.IsSupported(version));
    }

    [Fact]
    public void ParseRayVersion_DevBuild_IsFlagged()
    {
        var (version, isDev) = RayVersions.ParseRayVersion("3.0.0.dev0");

        Assert.Equal(new Version(3, 0, 0), version);
        Assert.True(isDev);
    }

    [Fact]
    public void ParseRayVersion_Garbage_Throws()
    {
        Assert.Throws<FormatException>(() => RayVersions.ParseRayVersion("latest"));
    }
}
