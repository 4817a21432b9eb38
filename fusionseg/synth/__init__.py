"""The synthetic world: the default profile's data, generated offline from a seed.

`world` generates the datasets in their official layouts (`generate`, `SynthConfig`, `SynthManifest`);
`content` draws the objects' shapes and textures, `scenes` composes them into clips with camera and
object motion; `study` measures the generated clips (motion statistics, baseline scores) for the tests.
"""
