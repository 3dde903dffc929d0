from django.http import HttpResponse


def shelf(request):
    return HttpResponse("ok")
