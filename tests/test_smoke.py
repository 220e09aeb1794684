def test_login_and_dashboard(world, login):
    client = login(world.bz_admin)
    response = client.get("/")
    assert response.status_code == 200
    assert "工作台" in response.get_data(as_text=True)
